"""What happened in the hall, as facts.

Every engine operation returns the events it produced, and the engine's state
is nothing but these events applied in order: replaying them over the same
layout rebuilds the same hall. Names are stable (``ticket.called``); the
server persists and publishes them as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import ClassVar, TypeVar

from queueing.strategies import StrategySpec


@dataclass(frozen=True, slots=True)
class Event:
    type: ClassVar[str]
    at: datetime


EVENT_TYPES: dict[str, type[Event]] = {}


E = TypeVar("E", bound=type[Event])


def event(name: str) -> Callable[[E], E]:
    def register(cls: E) -> E:
        cls.type = name
        EVENT_TYPES[name] = cls
        return cls

    return register


@event("day.started")
@dataclass(frozen=True, slots=True)
class DayStarted(Event):
    """Numbering and quotas restart; the previous day's open tickets have
    already expired by the events before this one.

    It is also a checkpoint: it carries everything that outlives a day
    (closed windows, the services and strategy of each window, the learned
    service times, the issue ordinal), so the day's events from here on
    rebuild the whole hall without the days before.
    """

    day: date
    ordinal: int = 0
    closed: tuple[str, ...] = ()
    window_services: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = ()
    strategies: tuple[tuple[str, StrategySpec], ...] = ()
    service_seconds: tuple[tuple[str, float], ...] = ()
    service_terms: tuple[tuple[str, tuple[tuple[str, str], ...], int | None], ...] = ()
    """Services whose hours or quota a manager changed: (id, hours, quota)."""


@event("ticket.issued")
@dataclass(frozen=True, slots=True)
class TicketIssued(Event):
    ticket_id: str
    number: str
    prefix: str
    requested: str
    services: tuple[str, ...]
    source: str
    ordinal: int
    key: int
    citizen_ref: str | None = None
    priority_group: str | None = None
    appointment_slot: datetime | None = None


@event("ticket.called")
@dataclass(frozen=True, slots=True)
class TicketCalled(Event):
    ticket_id: str
    number: str
    window_id: str
    staff_id: str
    service_id: str
    rule: str
    """The strategy rule that chose the ticket, or ``picked`` for a named call."""


@event("ticket.recalled")
@dataclass(frozen=True, slots=True)
class TicketRecalled(Event):
    ticket_id: str
    number: str
    window_id: str
    recalls: int


@event("ticket.started")
@dataclass(frozen=True, slots=True)
class TicketStarted(Event):
    ticket_id: str
    window_id: str


@event("ticket.step_completed")
@dataclass(frozen=True, slots=True)
class TicketStepCompleted(Event):
    """One service of a package is done; the ticket waits for the next."""

    ticket_id: str
    window_id: str
    service_id: str
    next_service_id: str
    service_seconds: float


@event("ticket.finished")
@dataclass(frozen=True, slots=True)
class TicketFinished(Event):
    ticket_id: str
    window_id: str
    service_id: str
    service_seconds: float


@event("ticket.skipped")
@dataclass(frozen=True, slots=True)
class TicketSkipped(Event):
    """A no-show put back into its queue with a new key."""

    ticket_id: str
    window_id: str
    skips: int
    key: int


@event("ticket.abandoned")
@dataclass(frozen=True, slots=True)
class TicketAbandoned(Event):
    """A no-show skipped more often than the policy allows."""

    ticket_id: str
    window_id: str
    skips: int


@event("ticket.transferred")
@dataclass(frozen=True, slots=True)
class TicketTransferred(Event):
    ticket_id: str
    from_window_id: str
    service_id: str
    to_window_id: str | None


@event("ticket.held")
@dataclass(frozen=True, slots=True)
class TicketHeld(Event):
    ticket_id: str
    window_id: str


@event("ticket.released")
@dataclass(frozen=True, slots=True)
class TicketReleased(Event):
    """A held citizen is back; the ticket waits for its window again."""

    ticket_id: str
    window_id: str


@event("ticket.cancelled")
@dataclass(frozen=True, slots=True)
class TicketCancelled(Event):
    ticket_id: str
    reason: str


@event("ticket.expired")
@dataclass(frozen=True, slots=True)
class TicketExpired(Event):
    ticket_id: str


@event("service.terms_changed")
@dataclass(frozen=True, slots=True)
class ServiceTermsChanged(Event):
    """A manager changed a service's opening hours (``[("09:00", "12:00"), ...]``
    on the weekdays the configuration gives; "24:00" ends at midnight) and its
    daily quota (None: unlimited)."""

    service_id: str
    hours: tuple[tuple[str, str], ...]
    daily_quota: int | None


@event("window.logged_in")
@dataclass(frozen=True, slots=True)
class WindowLoggedIn(Event):
    window_id: str
    staff_id: str


@event("window.logged_out")
@dataclass(frozen=True, slots=True)
class WindowLoggedOut(Event):
    window_id: str
    staff_id: str


@event("window.paused")
@dataclass(frozen=True, slots=True)
class WindowPaused(Event):
    window_id: str
    reason: str
    message: str


@event("window.resumed")
@dataclass(frozen=True, slots=True)
class WindowResumed(Event):
    window_id: str


@event("window.closed")
@dataclass(frozen=True, slots=True)
class WindowClosed(Event):
    window_id: str


@event("window.opened")
@dataclass(frozen=True, slots=True)
class WindowOpened(Event):
    window_id: str


@event("window.services_changed")
@dataclass(frozen=True, slots=True)
class WindowServicesChanged(Event):
    window_id: str
    services: tuple[tuple[str, int], ...]


@event("window.strategy_changed")
@dataclass(frozen=True, slots=True)
class StrategyChanged(Event):
    scope: str
    """``window``, ``group``, ``area`` or ``all``: what the manager chose."""
    target: str
    window_ids: tuple[str, ...]
    spec: StrategySpec


@event("window.state_changed")
@dataclass(frozen=True, slots=True)
class WindowStateChanged(Event):
    """Derived: emitted whenever a window's visible state changes, for the
    screens and the status wall. Applying it changes nothing."""

    window_id: str
    screen_id: str
    old: str
    new: str
    ticket_number: str | None
    message: str | None


@event("window.anomaly_started")
@dataclass(frozen=True, slots=True)
class AnomalyStarted(Event):
    window_id: str
    kind: str


@event("window.anomaly_ended")
@dataclass(frozen=True, slots=True)
class AnomalyEnded(Event):
    window_id: str
    kind: str
