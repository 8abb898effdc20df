"""Which messages what happens makes: an ``Intent`` per (rule, cause, citizen).

Each intent carries a key that names its cause (``called:20261124-A013:57``:
the call with sequence number 57), so the same cause seen twice (a replay of
the log after a restart) makes the same key, and the outbox's unique key
turns it into nothing. Channels, addresses and texts come later
(``intake``): a rule only decides that the citizen should hear of it.

Silent calling (Q6) is a rule about state, not about one event: after
anything that moves a queue, every watched ticket whose people ahead have
fallen to the service's N is told once (``ahead:<ticket>``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hall.config import HallConfig
from hall.eventstore import StoredEvent
from queueing import Engine, Rejected
from queueing.tickets import Status, Ticket


@dataclass(frozen=True, slots=True)
class Intent:
    key: str
    rule: str
    citizen_id: int
    ticket_id: str | None
    service: str | None
    values: Mapping[str, str]




def citizen_of(ref: str | None) -> int | None:
    return int(ref) if ref is not None and ref.isdigit() else None


class Describe:
    """The values a rule's text can use, from the hall's layout and engine."""

    def __init__(self, config: HallConfig) -> None:
        self.config = config

    def common(self, service: str | None) -> dict[str, str]:
        layout = self.config.layout
        name = ""
        if service is not None and service in layout.services:
            name = layout.services[service].name
        elif service is not None and service in layout.packages:
            name = layout.packages[service].name
        return {"hall_name": layout.name, "service": service or "", "service_name": name}

    def ticket(self, engine: Engine, ticket: Ticket) -> dict[str, str]:
        values = self.common(ticket.service)
        values["number"] = ticket.number
        text = self.config.tickets.get(ticket.requested)
        values["direction"] = text.direction if text is not None else ""
        ahead, minutes = "", "--"
        if ticket.status is Status.WAITING:
            try:
                estimate = engine.ticket_estimate(ticket.id)
            except Rejected:
                estimate = None
            if estimate is not None:
                ahead = str(estimate.people_ahead)
                if estimate.minutes is not None:
                    minutes = str(math.ceil(estimate.minutes))
        values["ahead"], values["minutes"] = ahead, minutes
        return values

    def slot(self, service: str, start: datetime) -> dict[str, str]:
        local = start.astimezone(self.config.timezone)
        return {**self.common(service), "slot": f"{local.month}月{local.day}日 {local:%H:%M}",
                "date": f"{local:%Y-%m-%d}", "time": f"{local:%H:%M}"}


def from_events(events: Iterable[StoredEvent], engine: Engine, describe: Describe
                ) -> list[Intent]:
    intents: list[Intent] = []
    for stored in events:
        event: Any = stored.event
        kind = event.type
        if kind == "ticket.issued":
            ticket = ticket_of(engine, event.ticket_id)
            citizen = citizen_of(event.citizen_ref)
            if ticket is not None and citizen is not None and ticket.status is Status.WAITING:
                intents.append(Intent(f"ticket_issued:{ticket.id}", "ticket_issued", citizen,
                                      ticket.id, ticket.service, describe.ticket(engine, ticket)))
        elif kind == "ticket.called":
            ticket = ticket_of(engine, event.ticket_id)
            citizen = None if ticket is None else citizen_of(ticket.citizen_ref)
            if ticket is not None and citizen is not None:
                values = describe.ticket(engine, ticket)
                values.update(describe.common(event.service_id))
                window = describe.config.layout.windows.get(event.window_id)
                values["window"] = window.name if window is not None else event.window_id
                intents.append(Intent(f"called:{ticket.id}:{stored.seq}", "called", citizen,
                                      ticket.id, event.service_id, values))
        elif kind == "appointment.booked":
            citizen = citizen_of(event.citizen_ref)
            if citizen is not None:
                intents.append(booked(describe, event.appointment_id, "", event.service,
                                      event.slot_start, citizen))
    return intents


def booked(describe: Describe, appointment_id: int, code: str, service: str,
           slot_start: datetime, citizen: int) -> Intent:
    values = {**describe.slot(service, slot_start), "code": code}
    return Intent(f"booked:{appointment_id}", "booked", citizen, None, service, values)


def case_step(describe: Describe, progress_id: int, case_id: str, status: str, message: str,
              ticket: IssuedTicket | None, citizen: int) -> Intent:
    done = status in describe.config.notifications.done_statuses
    rule = "case_done" if done else "case_progress"
    service = ticket.service if ticket is not None else None
    values = {**describe.common(service), "case_id": case_id, "status": status,
              "message": message, "number": ticket.number if ticket is not None else ""}
    return Intent(f"case:{progress_id}", rule, citizen, ticket.id if ticket else None,
                  service, values)


@dataclass(frozen=True, slots=True)
class IssuedTicket:
    """What a case step needs of its ticket, which may be of an earlier day."""

    id: str
    number: str
    service: str
    citizen_ref: str | None


class AheadWatch:
    """Waiting tickets with a citizen, not yet told, whose service has an N (Q6).

    Kept in memory and rebuilt from the engine when the hall starts (less those
    the outbox says were told); checking one is O(log n), and only tickets with
    a citizen are watched."""

    def __init__(self, describe: Describe) -> None:
        self.describe = describe
        self._watched: dict[str, int] = {}

    def rebuild(self, engine: Engine, told: AbstractSet[str]) -> None:
        self._watched.clear()
        for ticket in engine.tickets():
            self.consider(engine, ticket, told)

    def consider(self, engine: Engine, ticket: Ticket,
                 told: AbstractSet[str] = frozenset()) -> None:
        citizen = citizen_of(ticket.citizen_ref)
        n = self.describe.config.notifications.ahead_of(ticket.service)
        if citizen is None or n <= 0 or ticket.status is not Status.WAITING:
            return
        if f"ahead:{ticket.id}" in told or self._ahead(engine, ticket) <= n:
            return  # told already, or told the position when the ticket was issued
        self._watched[ticket.id] = citizen

    def due(self, engine: Engine) -> list[Intent]:
        """Tickets to tell now; they stay watched until ``told`` (their messages
        are stored), so a failed write loses none."""
        intents = []
        for ticket_id, citizen in list(self._watched.items()):
            ticket = ticket_of(engine, ticket_id)
            if ticket is None or ticket.status.is_final:
                del self._watched[ticket_id]
                continue
            if ticket.status is not Status.WAITING:
                continue  # called, held: may wait again later
            n = self.describe.config.notifications.ahead_of(ticket.service)
            if self._ahead(engine, ticket) > n:
                continue
            intents.append(Intent(f"ahead:{ticket_id}", "ahead", citizen, ticket_id,
                                  ticket.service, self.describe.ticket(engine, ticket)))
        return intents

    def told(self, intents: Iterable[Intent]) -> None:
        for intent in intents:
            if intent.rule == "ahead" and intent.ticket_id is not None:
                self._watched.pop(intent.ticket_id, None)

    def watching(self) -> int:
        return len(self._watched)

    @staticmethod
    def _ahead(engine: Engine, ticket: Ticket) -> int:
        try:
            return engine.ticket_estimate(ticket.id).people_ahead
        except Rejected:
            return 0


def ticket_of(engine: Engine, ticket_id: str) -> Ticket | None:
    try:
        return engine.ticket(ticket_id)
    except (Rejected, KeyError):
        return None
