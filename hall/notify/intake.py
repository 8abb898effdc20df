"""From what happened to the outbox: the notifier reads the event log and the
intake table, applies the rules and stores the messages.

Why not in the group commit of the events themselves (``execute(side=...)``):
every caller of ``execute`` (REST, the device link, check-in, the clock tick,
whatever comes next) would have to remember to pass the rules, and a rule
needs the citizen's phone, which is sealed in the database and cannot be
read in the engine's synchronous step. Instead the notifier is a reader of
the durable log like the event stream's clients: it keeps its place
(``notify_cursor``) and moves it in the same transaction as the messages it
made of the events up to there. A crash before that transaction re-reads the
same events; each message's key names its cause, so a re-read makes nothing
twice. Nothing is lost either: an event is durable before the notifier hears
of it, and an event heard while the database was failing is read again
from the log.

Bookings imported from the backend and case steps have no event: a trigger
writes each into ``notify_intake`` in the transaction that stored it and
wakes us with ``NOTIFY hall_notify``; the intake row is deleted in the
transaction that stores its messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime

import asyncpg

from hall.config import HallConfig
from hall.eventstore import StoredEvent
from hall.notify import rules
from hall.notify.contacts import Contact, Contacts
from hall.notify.listener import NotifyListener
from hall.notify.outbox import OUTBOX, OutboxRow, OutboxStore
from hall.notify.rules import AheadWatch, Describe, Intent, IssuedTicket
from hall.notify.templates import names, render
from hall.runtime import HallRuntime
from queueing.events import TicketIssued

log = logging.getLogger(__name__)

STORAGE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
PAGE = 500
BUFFER_LIMIT = 20_000
"""Events heard but not yet read; past this they are dropped and read from the log."""

_REGISTER = """
INSERT INTO notify_cursor (hall_id, last_seq, enabled) VALUES ($1, $2, true)
ON CONFLICT (hall_id) DO UPDATE SET enabled = true,
    last_seq = CASE WHEN notify_cursor.enabled THEN notify_cursor.last_seq
                    ELSE excluded.last_seq END
RETURNING last_seq
"""


class Intake:
    def __init__(self, config: HallConfig, runtime: HallRuntime, pool: asyncpg.Pool,
                 store: OutboxStore, contacts: Contacts, on_rows: Callable[[], None],
                 listener: NotifyListener) -> None:
        self.notify = config.notifications
        self.listener = listener
        self.runtime = runtime
        self.pool = pool
        self.store = store
        self.contacts = contacts
        self.on_rows = on_rows
        self.hall_id = runtime.hall_id
        self.describe = Describe(config)
        self.watch = AheadWatch(self.describe)
        self.cursor = 0
        self._buffer: list[StoredEvent] = []
        self._events_wake = asyncio.Event()
        self._table_wake = asyncio.Event()
        self._unsubscribe: Callable[[], None] | None = None

    # --- life -------------------------------------------------------------------

    async def open(self) -> None:
        """Take over the hall's place in the log: a hall that had notifications off
        starts from now, not from whatever happened meanwhile."""
        self._unsubscribe = self.runtime.bus.subscribe(self._heard)
        last = await self.runtime.store.last_seq()
        self.cursor = int(await self.pool.fetchval(_REGISTER, self.hall_id, last))
        self.watch.rebuild(self.runtime.engine, await self.store.told_ahead())
        self._events_wake.set()

    async def disable(self) -> None:
        """A hall running without notifications: the triggers stop noting, and what
        they noted is dropped, so switching on later starts from then."""
        await self.pool.execute(
            "UPDATE notify_cursor SET enabled = false WHERE hall_id = $1", self.hall_id)
        await self.pool.execute("DELETE FROM notify_intake WHERE hall_id = $1", self.hall_id)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _heard(self, events: Sequence[StoredEvent]) -> None:
        """On the bus, in the engine's task: only hand over."""
        self._buffer.extend(events)
        if len(self._buffer) > BUFFER_LIMIT:
            self._buffer.clear()
        self._events_wake.set()

    # --- the event log ----------------------------------------------------------

    async def run_events(self) -> None:
        delay = 0.2
        while True:
            await self._events_wake.wait()
            self._events_wake.clear()
            try:
                while await self.step():
                    pass
                delay = 0.2
            except STORAGE_ERRORS as exc:
                log.warning("notifications: events not processed (%s); again in %.1f s",
                            exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                self._events_wake.set()

    async def step(self) -> bool:
        """One batch of events into the outbox; False when there was none."""
        batch = self._contiguous() or await self.runtime.store.read_since(self.cursor, PAGE)
        if not batch:
            return False
        await self.process(batch)
        return True

    async def process(self, batch: Sequence[StoredEvent]) -> None:
        """The messages of these events, stored with the cursor moved past them. Events
        at or before the cursor make messages too (their keys are taken already)."""
        engine = self.runtime.engine
        for stored in batch:
            if isinstance(stored.event, TicketIssued):
                ticket = rules.ticket_of(engine, stored.event.ticket_id)
                if ticket is not None:
                    self.watch.consider(engine, ticket)
        intents = rules.from_events(batch, engine, self.describe)
        intents += self.watch.due(engine)
        rows = await self.rows(intents)
        last = max(stored.seq for stored in batch)
        async with self.pool.acquire() as connection, connection.transaction():
            if rows:
                await OUTBOX.write(connection, self.hall_id, [row.row() for row in rows])
            await connection.execute(
                "UPDATE notify_cursor SET last_seq = $2 WHERE hall_id = $1 AND last_seq < $2",
                self.hall_id, last)
        self.cursor = max(self.cursor, last)
        self.watch.told(intents)
        if rows:
            self.on_rows()

    def _contiguous(self) -> list[StoredEvent]:
        """Buffered events that follow the cursor without a gap; with a gap, the log."""
        pending = [stored for stored in self._buffer if stored.seq > self.cursor]
        run: list[StoredEvent] = []
        for stored in pending:
            expected = run[-1].seq + 1 if run else self.cursor + 1
            if stored.seq != expected or len(run) >= PAGE:
                break
            run.append(stored)
        self._buffer = pending[len(run):] if run else pending
        return run

    # --- the intake table -------------------------------------------------------

    async def run_table(self) -> None:
        """Woken by the process's listener (``hall.notify.listener``) for this hall's
        notes, and when it (re)connects: what was noted meanwhile went unheard."""
        unsubscribe = self.listener.subscribe(self.hall_id, self._table_wake.set)
        delay = 0.5
        try:
            while True:
                await self._table_wake.wait()
                self._table_wake.clear()
                try:
                    while await self.table_step():
                        pass
                    delay = 0.5
                except STORAGE_ERRORS as exc:
                    log.warning("notifications: intake not read (%s); again in %.1f s",
                                exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    self._table_wake.set()
        finally:
            unsubscribe()

    async def table_step(self) -> bool:
        noted = await self.pool.fetch(
            "SELECT id, kind, key FROM notify_intake WHERE hall_id = $1 ORDER BY id LIMIT $2",
            self.hall_id, PAGE)
        if not noted:
            return False
        intents: list[Intent] = []
        for item in noted:
            intent = await (self._booking(int(item["key"])) if item["kind"] == "booked"
                            else self._case_step(int(item["key"])))
            if intent is not None:
                intents.append(intent)
        rows = await self.rows(intents)
        async with self.pool.acquire() as connection, connection.transaction():
            if rows:
                await OUTBOX.write(connection, self.hall_id, [row.row() for row in rows])
            await connection.execute("DELETE FROM notify_intake WHERE id = ANY($1::bigint[])",
                                     [item["id"] for item in noted])
        if rows:
            self.on_rows()
        return True

    async def _booking(self, appointment_id: int) -> Intent | None:
        row = await self.pool.fetchrow(
            "SELECT id, code, service, slot_start, citizen_id FROM appointments"
            " WHERE hall_id = $1 AND id = $2", self.hall_id, appointment_id)
        if row is None or row["citizen_id"] is None:
            return None
        return rules.booked(self.describe, row["id"], row["code"], row["service"],
                            row["slot_start"], row["citizen_id"])

    async def _case_step(self, progress_id: int) -> Intent | None:
        row = await self.pool.fetchrow(
            "SELECT case_id, ticket_id, status, message FROM case_progress"
            " WHERE hall_id = $1 AND id = $2", self.hall_id, progress_id)
        if row is None or row["ticket_id"] is None:
            return None
        ticket = await self.issued(row["ticket_id"])
        citizen = None if ticket is None else rules.citizen_of(ticket.citizen_ref)
        if citizen is None:
            return None
        return rules.case_step(self.describe, progress_id, row["case_id"], row["status"],
                               row["message"], ticket, citizen)

    async def issued(self, ticket_id: str) -> IssuedTicket | None:
        """A ticket of today from the engine, an older one from its ``ticket.issued``."""
        ticket = rules.ticket_of(self.runtime.engine, ticket_id)
        if ticket is not None:
            return IssuedTicket(ticket.id, ticket.number, ticket.service, ticket.citizen_ref)
        try:
            day = datetime.strptime(ticket_id[:8], "%Y%m%d").date()
        except ValueError:
            return None
        return await self._issued_on(day, ticket_id)

    async def _issued_on(self, day: date, ticket_id: str) -> IssuedTicket | None:
        data = await self.pool.fetchval(
            "SELECT data FROM hall_events WHERE hall_id = $1 AND day = $2"
            " AND type = 'ticket.issued' AND data->>'ticket_id' = $3 LIMIT 1",
            self.hall_id, day, ticket_id)
        if data is None:
            return None
        issued = json.loads(data)
        return IssuedTicket(ticket_id, issued["number"], issued["services"][0],
                            issued.get("citizen_ref"))

    # --- intents into rows ------------------------------------------------------

    async def rows(self, intents: Sequence[Intent]) -> list[OutboxRow]:
        """One row per channel the service, the rule and the citizen agree on and
        the citizen has an address for (a citizen without a phone gets no SMS)."""
        found: list[OutboxRow] = []
        known: dict[int, Contact | None] = {}
        for intent in intents:
            rule = self.notify.rule_for(intent.rule, intent.service)
            if rule is None:
                continue
            if intent.citizen_id not in known:
                known[intent.citizen_id] = await self.contacts.of(intent.citizen_id)
            contact = known[intent.citizen_id]
            if contact is None:
                continue
            text = render(rule.text, intent.values)
            wanted = rule.params if rule.params is not None else tuple(dict.fromkeys(
                names(rule.text)))
            params = {name: intent.values.get(name, "") for name in wanted}
            for channel in self.notify.channels_for(rule, intent.service):
                if contact.channels is not None and channel not in contact.channels:
                    continue
                if contact.address(channel) is None:
                    continue
                found.append(OutboxRow(
                    f"{intent.key}:{channel}", intent.rule, channel,
                    self.notify.channel_gateways[channel], intent.citizen_id, intent.ticket_id,
                    intent.service, rule.templates.get(channel, ""), text, params))
        return found
