"""The hall's state and the one way it changes: by applying events.

``HallState`` is the fold: it holds tickets, queues and windows and knows how
each event changes them, and nothing else. It never refuses and never
decides; the ``Engine`` built on it checks and decides, then applies the
events it made through the same appliers a replay uses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import date, datetime
from typing import Any, Self

from queueing.events import (
    AnomalyEnded,
    AnomalyStarted,
    DayStarted,
    Event,
    ServiceTermsChanged,
    StrategyChanged,
    TicketAbandoned,
    TicketCalled,
    TicketCancelled,
    TicketExpired,
    TicketFinished,
    TicketHeld,
    TicketIssued,
    TicketRecalled,
    TicketReleased,
    TicketSkipped,
    TicketStarted,
    TicketStepCompleted,
    TicketTransferred,
    WindowClosed,
    WindowLoggedIn,
    WindowLoggedOut,
    WindowOpened,
    WindowPaused,
    WindowResumed,
    WindowServicesChanged,
    WindowStateChanged,
)
from queueing.hours import hours_from_texts
from queueing.lanes import Entry, Lane, ServiceQueue
from queueing.layout import Layout
from queueing.strategies import Strategy, StrategySpec, build_strategy
from queueing.tickets import Source, Status, Ticket
from queueing.windows import Anomaly, Pause, WindowRuntime, WindowState


class HallState:
    """Tickets of the day, queues, windows, and the appliers that change them."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        """The layout in force: the configured one with the managers' changes of
        service hours and quotas (``service.terms_changed``) applied."""
        self._configured = layout
        self._terms: dict[str, tuple[tuple[tuple[str, str], ...], int | None]] = {}
        self.day: date | None = None
        self._day_text = ""
        self._tickets: dict[str, Ticket] = {}
        self._numbers: dict[str, int] = {}
        self._issued: dict[str, int] = dict.fromkeys(layout.services, 0)
        self._ordinal = 0
        self._queues: dict[str, ServiceQueue] = {s: ServiceQueue() for s in layout.services}
        self._service_seconds: dict[str, float] = {
            s.id: s.avg_service_minutes * 60.0 for s in layout.services.values()
        }
        default = build_strategy(layout.default_strategy)
        self._windows: dict[str, WindowRuntime] = {
            w.id: WindowRuntime(config=w, services=dict(w.services), strategy=default)
            for w in layout.windows.values()
        }
        self._staff_at: dict[str, str] = {}
        self._serving_windows: dict[str, list[WindowRuntime]] = {}
        self._index_services()
        self._appliers: dict[type[Event], Callable[[Any], None]] = {
            DayStarted: self._on_day_started,
            TicketIssued: self._on_issued,
            TicketCalled: self._on_called,
            TicketRecalled: self._on_recalled,
            TicketStarted: self._on_started,
            TicketStepCompleted: self._on_step_completed,
            TicketFinished: self._on_finished,
            TicketSkipped: self._on_skipped,
            TicketAbandoned: self._on_abandoned,
            TicketTransferred: self._on_transferred,
            TicketHeld: self._on_held,
            TicketReleased: self._on_released,
            TicketCancelled: self._on_cancelled,
            TicketExpired: self._on_expired,
            WindowLoggedIn: self._on_logged_in,
            WindowLoggedOut: self._on_logged_out,
            WindowPaused: self._on_paused,
            WindowResumed: self._on_resumed,
            WindowClosed: self._on_closed,
            WindowOpened: self._on_opened,
            WindowServicesChanged: self._on_services_changed,
            StrategyChanged: self._on_strategy_changed,
            ServiceTermsChanged: self._on_terms_changed,
            WindowStateChanged: lambda _event: None,
            AnomalyStarted: self._on_anomaly_started,
            AnomalyEnded: self._on_anomaly_ended,
        }

    @classmethod
    def replay(cls, layout: Layout, events: Iterable[Event]) -> Self:
        """The state (or engine) that these events, applied in order, make."""
        state = cls(layout)
        for item in events:
            state.apply(item)
        return state

    def apply(self, item: Event) -> None:
        """Apply one event that an engine over the same layout produced."""
        self._appliers[type(item)](item)

    def applies(self, item: Event) -> bool:
        """Whether the event is the engine's own: a server may log others
        beside them (a device coming online) that change no engine state."""
        return type(item) in self._appliers

    def _state(self, window: WindowRuntime) -> WindowState:
        """A window's visible state, derived so it can never disagree."""
        if window.closed:
            return WindowState.CLOSED
        if window.staff is None:
            return WindowState.NOT_LOGGED_IN
        if window.current is not None:
            called = self._tickets[window.current].status is Status.CALLED
            return WindowState.CALLING if called else WindowState.SERVING
        if window.pause is not None:
            return WindowState.PAUSED
        return WindowState.IDLE

    def _lanes_of(self, ticket: Ticket) -> list[tuple[Lane, Entry]]:
        """Where a waiting ticket sits: its named window's lane, or its
        service's queue plus the index its source puts it in."""
        if ticket.target_window is not None:
            return [(self._windows[ticket.target_window].own, ticket.entry)]
        queue = self._queues[ticket.service]
        if ticket.source is Source.PRIORITY:
            return [(queue.main, ticket.entry), (queue.priority, ticket.entry)]
        if ticket.source is Source.APPOINTMENT:
            return [(queue.main, ticket.entry), (queue.appointments, ticket.slot_entry)]
        return [(queue.main, ticket.entry)]

    def _enqueue(self, ticket: Ticket, at: datetime) -> None:
        ticket.status = Status.WAITING
        ticket.window = None
        ticket.enqueued_at = at
        for lane, entry in self._lanes_of(ticket):
            lane.add(entry)

    def _dequeue(self, ticket: Ticket) -> None:
        for lane, entry in self._lanes_of(ticket):
            lane.remove(entry)

    def _leave_window(self, ticket: Ticket) -> None:
        """Detach a ticket from the window that has it in hand or holds it."""
        if ticket.window is None:
            return
        window = self._windows[ticket.window]
        if window.current == ticket.id:
            window.current = None
        window.held.pop(ticket.id, None)

    def _learn_service_time(self, service_id: str, seconds: float) -> None:
        alpha = self.layout.ewma_alpha
        previous = self._service_seconds[service_id]
        self._service_seconds[service_id] = alpha * seconds + (1 - alpha) * previous

    def _index_services(self) -> None:
        index: dict[str, list[WindowRuntime]] = {}
        for window in self._windows.values():
            for service_id in window.services:
                index.setdefault(service_id, []).append(window)
        self._serving_windows = index

    def _on_day_started(self, event: DayStarted) -> None:
        self.day = event.day
        self._day_text = f"{event.day:%Y%m%d}"
        self._tickets.clear()
        self._numbers.clear()
        self._issued = dict.fromkeys(self.layout.services, 0)
        for window in self._windows.values():
            window.logged_in_today = False
            window.logged_out_at = None
        self._restore_checkpoint(event)

    def _restore_checkpoint(self, event: DayStarted) -> None:
        """Take over what outlives a day. The layout has the last word: a
        window or service removed from the configuration since is ignored."""
        self._ordinal = max(self._ordinal, event.ordinal)
        services = self.layout.services
        for service_id, seconds in event.service_seconds:
            if service_id in services:
                self._service_seconds[service_id] = seconds
        self._terms.clear()
        self.layout = self._configured
        for service_id, hours, quota in event.service_terms:
            if service_id in services:
                self._set_terms(service_id, hours, quota)
        closed = set(event.closed)
        built: dict[StrategySpec, Strategy] = {}
        strategies = dict(event.strategies)
        serving = dict(event.window_services)
        for window in self._windows.values():
            window.closed = window.id in closed
            if window.id in strategies:
                spec = strategies[window.id]
                if spec not in built:
                    built[spec] = build_strategy(spec)
                window.strategy = built[spec]
            kept = {s: w for s, w in serving.get(window.id, ()) if s in services}
            if kept:
                window.services = kept
        self._index_services()

    def _on_issued(self, event: TicketIssued) -> None:
        prefix = event.prefix
        ticket = Ticket(
            id=event.ticket_id,
            number=event.number,
            prefix=prefix,
            requested=event.requested,
            services=event.services,
            source=Source(event.source),
            issued_at=event.at,
            ordinal=event.ordinal,
            key=event.key,
            citizen_ref=event.citizen_ref,
            priority_group=event.priority_group,
            appointment_slot=event.appointment_slot,
        )
        self._tickets[ticket.id] = ticket
        self._numbers[prefix] = int(event.number[len(prefix) :])
        self._ordinal = event.ordinal
        for service_id in event.services:
            self._issued[service_id] += 1
        self._enqueue(ticket, event.at)
        ticket.stamp("issued", event.at)

    def _on_called(self, event: TicketCalled) -> None:
        ticket = self._tickets[event.ticket_id]
        window = self._windows[event.window_id]
        if ticket.status is Status.HELD:
            window.held.pop(ticket.id)
        else:
            self._dequeue(ticket)
        ticket.target_window = None
        ticket.status = Status.CALLED
        ticket.called_at = event.at
        ticket.window = window.id
        window.current = ticket.id
        ticket.stamp("called", event.at, window.id)

    def _on_recalled(self, event: TicketRecalled) -> None:
        ticket = self._tickets[event.ticket_id]
        ticket.recalls = event.recalls
        ticket.stamp("recalled", event.at, event.window_id)

    def _on_started(self, event: TicketStarted) -> None:
        ticket = self._tickets[event.ticket_id]
        ticket.status = Status.SERVING
        ticket.started_at = event.at
        ticket.stamp("started", event.at, event.window_id)

    def _on_step_completed(self, event: TicketStepCompleted) -> None:
        ticket = self._tickets[event.ticket_id]
        self._learn_service_time(event.service_id, event.service_seconds)
        ticket.stamp("step_completed", event.at, event.window_id)
        self._leave_window(ticket)
        ticket.step += 1
        ticket.started_at = None
        self._enqueue(ticket, event.at)

    def _on_finished(self, event: TicketFinished) -> None:
        ticket = self._tickets[event.ticket_id]
        self._learn_service_time(event.service_id, event.service_seconds)
        self._leave_window(ticket)
        ticket.status = Status.FINISHED
        ticket.stamp("finished", event.at, event.window_id)

    def _on_skipped(self, event: TicketSkipped) -> None:
        ticket = self._tickets[event.ticket_id]
        self._leave_window(ticket)
        ticket.skips = event.skips
        ticket.key = event.key
        self._enqueue(ticket, event.at)
        ticket.stamp("skipped", event.at, event.window_id)

    def _on_abandoned(self, event: TicketAbandoned) -> None:
        ticket = self._tickets[event.ticket_id]
        self._leave_window(ticket)
        ticket.skips = event.skips
        ticket.status = Status.ABANDONED
        ticket.stamp("abandoned", event.at, event.window_id)

    def _on_transferred(self, event: TicketTransferred) -> None:
        ticket = self._tickets[event.ticket_id]
        self._detach(ticket)
        step = ticket.step
        ticket.services = (*ticket.services[:step], event.service_id, *ticket.services[step + 1 :])
        ticket.target_window = event.to_window_id
        ticket.started_at = None
        self._enqueue(ticket, event.at)
        ticket.stamp("transferred", event.at, event.from_window_id)

    def _on_held(self, event: TicketHeld) -> None:
        ticket = self._tickets[event.ticket_id]
        window = self._windows[event.window_id]
        window.current = None
        window.held[ticket.id] = None
        ticket.status = Status.HELD
        ticket.stamp("held", event.at, window.id)

    def _on_released(self, event: TicketReleased) -> None:
        ticket = self._tickets[event.ticket_id]
        self._leave_window(ticket)
        ticket.target_window = event.window_id
        self._enqueue(ticket, event.at)
        ticket.stamp("released", event.at, event.window_id)

    def _detach(self, ticket: Ticket) -> None:
        """Take a ticket out of wherever it is: a queue, a hand or a hold."""
        if ticket.status is Status.WAITING:
            self._dequeue(ticket)
        else:
            self._leave_window(ticket)

    def _end(self, ticket: Ticket, status: Status, at: datetime) -> None:
        self._detach(ticket)
        ticket.status = status
        ticket.stamp(status.value, at, ticket.window)

    def _on_cancelled(self, event: TicketCancelled) -> None:
        self._end(self._tickets[event.ticket_id], Status.CANCELLED, event.at)

    def _on_expired(self, event: TicketExpired) -> None:
        self._end(self._tickets[event.ticket_id], Status.EXPIRED, event.at)

    def _on_logged_in(self, event: WindowLoggedIn) -> None:
        window = self._windows[event.window_id]
        window.staff = event.staff_id
        window.logged_in_today = True
        self._staff_at[event.staff_id] = window.id

    def _on_logged_out(self, event: WindowLoggedOut) -> None:
        window = self._windows[event.window_id]
        self._staff_at.pop(event.staff_id, None)
        window.staff = None
        window.pause = None
        window.logged_out_at = event.at

    def _on_paused(self, event: WindowPaused) -> None:
        reason = self.layout.pause_reasons[event.reason]
        self._windows[event.window_id].pause = Pause(reason, event.message, event.at)

    def _on_resumed(self, event: WindowResumed) -> None:
        self._windows[event.window_id].pause = None

    def _on_closed(self, event: WindowClosed) -> None:
        self._windows[event.window_id].closed = True

    def _on_opened(self, event: WindowOpened) -> None:
        self._windows[event.window_id].closed = False

    def _on_services_changed(self, event: WindowServicesChanged) -> None:
        self._windows[event.window_id].services = dict(event.services)
        self._index_services()

    def _on_strategy_changed(self, event: StrategyChanged) -> None:
        strategy: Strategy = build_strategy(event.spec)
        for window_id in event.window_ids:
            self._windows[window_id].strategy = strategy

    def _on_terms_changed(self, event: ServiceTermsChanged) -> None:
        self._set_terms(event.service_id, event.hours, event.daily_quota)

    def _set_terms(
        self, service_id: str, hours: tuple[tuple[str, str], ...], quota: int | None
    ) -> None:
        """Put a service's new hours (on its configured weekdays) and quota in force."""
        configured = self._configured.services[service_id]
        service = replace(
            configured,
            hours=hours_from_texts(hours, configured.hours.weekdays),
            daily_quota=quota,
        )
        self._terms[service_id] = (hours, quota)
        self.layout = replace(self.layout, services={**self.layout.services, service_id: service})

    def _on_anomaly_started(self, event: AnomalyStarted) -> None:
        self._windows[event.window_id].anomalies[Anomaly(event.kind)] = event.at

    def _on_anomaly_ended(self, event: AnomalyEnded) -> None:
        self._windows[event.window_id].anomalies.pop(Anomaly(event.kind), None)
