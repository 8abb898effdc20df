"""One hall at run time: its engine, its clock, its storage and its bus.

Every change goes through ``execute``: the engine decides at the hall's
current time, the events are numbered and committed (shared with whatever
else is committing, see ``committer``), published, and only then returned to
the caller. At start the hall is rebuilt from the day's stored events. If a
commit fails, the hall stops taking changes (``Unavailable``) until it has
rebuilt itself from the database, so memory never runs ahead of what is
durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from hall.audit import AuditEntry
from hall.bus import EventBus
from hall.clock import Clock
from hall.committer import STORAGE_ERRORS, GroupCommitter, SideWrite
from hall.config import HallConfig, StrategyAssignment
from hall.device_store import DeviceStore
from hall.eventstore import EventStore, StoredEvent
from queueing import Engine, Event, Rejected
from queueing.events import DayStarted

log = logging.getLogger(__name__)


OPERATIONS = frozenset(
    {
        "start_day", "issue", "cancel", "call_next", "call_ticket", "recall", "start",
        "finish", "skip", "transfer", "hold", "release", "login", "logout", "pause",
        "resume", "close_window", "open_window", "set_window_services", "set_strategy",
        "set_service_terms",
        "check_clock",
    }
)

KEEP_DEVICE_REPLIES = timedelta(days=2)
"""How long devices' answered requests are kept for their retries (docs/mqtt.md
promises a day); older ones go at the rollover."""
"""The engine's operations, by name: the engine is rebuilt on recovery, so
callers name what to do instead of holding a bound method of an old one."""


class Unavailable(Exception):
    """The hall takes no changes now (storage failed; it is recovering)."""


class HallRuntime:
    def __init__(
        self, config: HallConfig, clock: Clock, bus: EventBus, pool: asyncpg.Pool,
        *, writers: asyncpg.Pool | None = None,
    ) -> None:
        """``writers``: a pool the commits share with other halls' (a city process);
        without it the hall's writer holds a connection of ``pool`` of its own."""
        self.config = config
        self.clock = clock
        self.bus = bus
        self.hall_id = config.layout.hall_id
        self.store = EventStore(pool, self.hall_id)
        self.committer = GroupCommitter(
            writers or pool, self.store, on_committed=bus.publish,
            on_failed=self._commit_failed, hold_connection=writers is None,
        )
        self.engine = Engine(config.layout)
        self.device_replies = DeviceStore(pool, self.hall_id)
        self.ready = False
        self._tasks: list[asyncio.Task[None]] = []
        self.on_tick: list[Callable[[datetime], Awaitable[list[StoredEvent]]]] = []
        """Run at every tick after the engine's clock check, with the hall's time:
        work the hall owes to time passing (appointments missed), on the same timer."""

    async def start(self) -> None:
        """Rebuild from storage, open today if needed, start the writer."""
        await self.restore()
        self._tasks.append(asyncio.create_task(self.committer.run(), name="committer"))
        self.ready = True
        now = self.clock.now()
        if self.engine.day is None or self.is_next_day(now):
            await self.open_day()

    async def stop(self) -> None:
        self.ready = False
        await self.committer.drain()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def restore(self) -> int:
        """Replay the current day from storage; returns the events read."""
        stored = await self.store.load_current_day()
        engine = Engine(self.config.layout)
        for item in stored:
            if engine.applies(item.event):
                engine.apply(item.event)
        self.engine = engine
        last = stored[-1].seq if stored else await self.store.last_seq()
        self.committer.next_seq = last + 1
        log.info("hall %s: %d events restored, next seq %d", self.hall_id, len(stored), last + 1)
        return len(stored)

    async def execute(
        self,
        operation: str,
        *args: Any,
        audit: AuditEntry | None = None,
        side: Callable[[list[StoredEvent]], Sequence[SideWrite]] | None = None,
        **kwargs: Any,
    ) -> list[StoredEvent]:
        """Run one engine operation (``execute("call_next", "w01")``) and wait
        until its events are durable, together with ``audit`` and whatever
        rows ``side`` makes of the events (a device's reply, kept for its
        retries). ``Rejected`` propagates with nothing changed.

        ``side`` runs at once, before anything else can touch the engine, so
        it sees the state the operation left; nothing awaits between the
        engine's decision and the numbering of its events, which is what keeps
        the sequence in the order the engine applied them."""
        if operation not in OPERATIONS:
            raise ValueError(f"{operation!r} is not an engine operation")
        if not self.ready:
            raise Unavailable("the hall is recovering its storage; try again shortly")
        day = self.engine.day
        method: Callable[..., list[Event]] = getattr(self.engine, operation)
        events = method(*args, now=self.clock.now(), **kwargs)
        if not events:
            return []
        stored = self._number(day, events)
        rows: list[SideWrite] = [] if audit is None else [audit]
        if side is not None:
            rows += side(stored)
        return await self.committer.submit(stored, rows)

    async def record(self, events: list[Event]) -> list[StoredEvent]:
        """Log events that are the hall's, not the engine's (``hall_events``):
        numbered and committed like the others, so subscribers see them in
        order and can resume them."""
        if not self.ready:
            raise Unavailable("the hall is recovering its storage; try again shortly")
        return await self.committer.submit(self._number(self.engine.day, events))

    def _number(self, day: date | None, events: Sequence[Event]) -> list[StoredEvent]:
        """Give each event its sequence number and business day: the events of
        a day's start that close the old day still belong to it."""
        stored = []
        for item in events:
            if isinstance(item, DayStarted):
                day = item.day
            assert day is not None
            stored.append(StoredEvent(self.committer.next_seq, self.hall_id, day, item))
            self.committer.next_seq += 1
        return stored

    async def open_day(self) -> list[StoredEvent]:
        """Start today's business day with the configured strategies, in one
        commit: a crash can leave the day unstarted, never started without
        its strategies. The most specific assignment is applied last, so it
        wins where they overlap."""
        if not self.ready:
            raise Unavailable("the hall is recovering its storage; try again shortly")
        engine = self.engine
        day = engine.day
        now = self.clock.now()
        events = engine.start_day(now.date(), now=now)
        for assignment in sorted(self.config.strategy_assignments, key=_specificity):
            try:
                events += engine.set_strategy(
                    assignment.spec, now=now, scope=assignment.scope, target=assignment.target
                )
            except Rejected as refused:
                log.error("strategy for %s %r not applied: %s",
                          assignment.scope, assignment.target, refused)
        stored = await self.committer.submit(self._number(day, events))
        await self._forget_old_replies(now)
        return stored

    async def _forget_old_replies(self, now: datetime) -> None:
        """At each new day, whether the hall rolled over running or started on it.
        A failure only waits for the next day: the day is open already."""
        try:
            forgotten = await self.device_replies.forget_replies_before(now - KEEP_DEVICE_REPLIES)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("old device replies not purged: %s", exc)
            return
        if forgotten:
            log.info("purged %d device replies older than %s", forgotten, KEEP_DEVICE_REPLIES)

    def is_next_day(self, now: datetime) -> bool:
        return (
            self.engine.day is not None
            and now.date() > self.engine.day
            and now.hour >= self.config.rollover_hour
        )

    async def keep_time(self, every_hall_seconds: float = 30.0) -> None:
        """Tick every ``every_hall_seconds`` of hall time, for as long as the hall runs."""
        while True:
            await asyncio.sleep(self.clock.seconds(every_hall_seconds))
            if not self.ready:
                continue
            try:
                await self.tick()
            except Exception:
                log.exception("the hall's clock tick failed; the next one tries again")

    async def tick(self) -> list[StoredEvent]:
        """Roll over at the configured hour (open tickets expire, numbering
        restarts), then raise and clear attendance anomalies."""
        stored: list[StoredEvent] = []
        if self.is_next_day(self.clock.now()):
            log.info("rolling over to %s", self.clock.now().date())
            stored += await self.open_day()
        stored += await self.execute("check_clock")
        for hook in self.on_tick:
            stored += await hook(self.clock.now())
        return stored

    def _commit_failed(self, error: BaseException) -> None:
        if self.ready:
            self.ready = False
            self._tasks.append(asyncio.create_task(self._recover(), name="recover"))

    async def _recover(self) -> None:
        """Rebuild from the database until it answers again."""
        delay = 0.2
        while True:
            await self.committer.drain()
            try:
                await self.restore()
            except STORAGE_ERRORS as exc:
                log.warning("storage still failing (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.ready = True
            log.info("hall %s recovered from storage", self.hall_id)
            return


SPECIFICITY = {"area": 0, "group": 1, "window": 2}


def _specificity(assignment: StrategyAssignment) -> int:
    return SPECIFICITY[assignment.scope]
