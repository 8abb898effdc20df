"""One fact per ticket, folded from the day's committed events (Q13).

The same fold runs on the live bus for today's figures and over the stored log
when a day is rolled up or rebuilt, so the two can never disagree about what a
ticket's wait or service time was. It reads only events, never the engine, so
a rebuild a year later gives the same facts as the rollover did.

What a fact says, and why:

* ``service`` is the first service the ticket was issued for: what the citizen
  came for, even when a clerk transferred it on.
* ``window``, ``staff`` and ``area`` are those of the last call: the window that
  finished the ticket, or the one where the citizen failed to show up.
* the wait is from issue to the first call, what the citizen sat through
  before being asked to a window (等候时长); later re-queues after a skip or a
  transfer are not waits the hall made the citizen sit through from scratch.
* the service time is the time served at every window: the engine's own
  ``service_seconds`` of each finished step, plus call-or-start to transfer for
  a segment that ended in a transfer. Only finished tickets have one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime

from hall.eventstore import StoredEvent
from queueing import Layout
from queueing.events import (
    Event,
    TicketAbandoned,
    TicketCalled,
    TicketCancelled,
    TicketExpired,
    TicketFinished,
    TicketIssued,
    TicketSkipped,
    TicketStarted,
    TicketStepCompleted,
    TicketTransferred,
)

FACT_EVENTS: tuple[type[Event], ...] = (
    TicketIssued, TicketCalled, TicketStarted, TicketStepCompleted, TicketFinished,
    TicketSkipped, TicketAbandoned, TicketTransferred, TicketCancelled, TicketExpired,
)
FACT_EVENT_TYPES = tuple(cls.type for cls in FACT_EVENTS)
"""The event types a fact is made of; the store reads only these."""

OUTCOMES = ("finished", "abandoned", "cancelled", "expired", "open")


def whole_seconds(seconds: float) -> int:
    """Half up, so a fact never depends on float rounding to even."""
    return int(seconds + 0.5)


@dataclass(slots=True)
class Fact:
    ticket_id: str
    day: date
    issued_at: datetime
    source: str
    service: str
    area: str = ""
    window: str = ""
    staff: str = ""
    outcome: str = "open"
    wait_s: int | None = None
    """Issue to the first call, set at the first call."""
    service_s: int | None = None
    """Time served at every window, set when the ticket is finished."""
    served_seconds: float = 0.0
    segment_from: datetime | None = None
    """Call or start of the segment at the current window, for a transfer's share."""
    skips: int = 0
    transfers: int = 0
    rating: int | None = None

    @property
    def hour(self) -> int:
        return self.issued_at.hour

    def row(self, hall_id: str) -> tuple[object, ...]:
        """Its values in the order of ``FACT_COLUMNS``."""
        return (hall_id, self.day, self.ticket_id, self.issued_at, self.hour, self.source,
                self.service, self.area, self.window, self.staff, self.outcome, self.wait_s,
                self.service_s, self.skips, self.transfers, self.rating)


FACT_COLUMNS = (
    "hall_id", "day", "ticket_id", "issued_at", "hour", "source", "service_id", "area_id",
    "window_id", "staff_id", "outcome", "wait_s", "service_s", "skips", "transfers", "rating",
)


class FactFold:
    """The facts of one business day, built event by event."""

    def __init__(self, layout: Layout, day: date) -> None:
        self.layout = layout
        self.day = day
        self.facts: dict[str, Fact] = {}
        self.last_seq = 0

    def apply_all(self, stored: Iterable[StoredEvent]) -> None:
        for item in stored:
            self.apply(item)

    def apply(self, stored: StoredEvent) -> None:
        """Events of other days, events seen already and tickets issued before
        the fold started are ignored: the fold only ever moves forward."""
        if stored.day != self.day or stored.seq <= self.last_seq:
            return
        self.last_seq = stored.seq
        event = stored.event
        if isinstance(event, TicketIssued):
            self.facts[event.ticket_id] = Fact(
                event.ticket_id, self.day, event.at, event.source, event.services[0])
            return
        ticket_id = getattr(event, "ticket_id", None)
        fact = self.facts.get(ticket_id) if isinstance(ticket_id, str) else None
        if fact is not None:
            self._on(fact, event)

    def _on(self, fact: Fact, event: Event) -> None:
        if isinstance(event, TicketCalled):
            if fact.wait_s is None:
                fact.wait_s = whole_seconds(max(0.0, (event.at - fact.issued_at).total_seconds()))
            window = self.layout.windows.get(event.window_id)
            fact.window, fact.staff = event.window_id, event.staff_id
            fact.area = window.area if window is not None else ""
            fact.segment_from = event.at
        elif isinstance(event, TicketStarted):
            fact.segment_from = event.at
        elif isinstance(event, TicketStepCompleted | TicketFinished):
            fact.served_seconds += event.service_seconds
            fact.segment_from = None
            if isinstance(event, TicketFinished):
                fact.outcome = "finished"
                fact.service_s = whole_seconds(fact.served_seconds)
        elif isinstance(event, TicketTransferred):
            fact.transfers += 1
            if fact.segment_from is not None:
                fact.served_seconds += max(0.0, (event.at - fact.segment_from).total_seconds())
            fact.segment_from = None
        elif isinstance(event, TicketSkipped):
            fact.skips = event.skips
            fact.segment_from = None
        elif isinstance(event, TicketAbandoned):
            fact.skips = event.skips
            fact.outcome = "abandoned"
        elif isinstance(event, TicketCancelled):
            fact.outcome = "cancelled"
        elif isinstance(event, TicketExpired):
            fact.outcome = "expired"

    def rate(self, ratings: Mapping[str, int]) -> None:
        """Ratings live in ``evaluations``, not in the log: each ticket's latest."""
        for ticket_id, rating in ratings.items():
            fact = self.facts.get(ticket_id)
            if fact is not None:
                fact.rating = rating
