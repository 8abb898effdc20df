"""The queueing and window-status engine.

Each public operation first checks everything that could refuse it and raises
``Rejected`` with nothing changed; then it builds the events that say what
happens and applies them. State changes only in ``HallState``'s appliers
(``queueing/state.py``), one per event type, which is why replaying the
events over the same layout rebuilds the same hall. The engine does no I/O
and reads no clock: the caller passes ``now`` (hall-local, timezone-aware in
the server) to every operation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from queueing.errors import Reason, Rejected
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
from queueing.lanes import KEY_SPACING, Lane, key_behind
from queueing.state import HallState
from queueing.strategies import StrategyError, StrategySpec, build_strategy
from queueing.tickets import Source, Status, Ticket
from queueing.windows import Anomaly, WindowRuntime, WindowState

STRATEGY_SCOPES = ("window", "group", "area", "all")


@dataclass(frozen=True, slots=True)
class Estimate:
    """People ahead and the expected wait (Q6); minutes is None while no
    open window serves the service."""

    people_ahead: int
    minutes: float | None
    open_windows: int


class _WindowView:
    """What a strategy sees when one window calls (``strategies.CallView``)."""

    __slots__ = ("_tickets", "now", "own", "queues", "services")

    def __init__(self, engine: Engine, window: WindowRuntime, now: datetime) -> None:
        self.now = now
        self.services = window.services
        self.own = window.own
        self.queues = engine._queues
        self._tickets = engine._tickets

    def waiting_since(self, ticket_id: str) -> datetime:
        ticket = self._tickets[ticket_id]
        assert ticket.enqueued_at is not None
        return ticket.enqueued_at

    def service_of(self, ticket_id: str) -> str:
        return self._tickets[ticket_id].service


class Engine(HallState):
    """Checks, decides and reports; see the module docstring."""

    # ------------------------------------------------------------------ day

    def start_day(self, day: date, *, now: datetime) -> list[Event]:
        """Open a business day: yesterday's open tickets expire, staff are
        logged out, numbering and quotas restart. Only a later day may start:
        restarting today would hand out today's numbers twice."""
        if self.day is not None and day <= self.day:
            raise Rejected(Reason.DAY_ALREADY_STARTED, f"{self.day} is running; {day} is not later")
        events: list[Event] = [
            TicketExpired(now, t.id) for t in self._tickets.values() if not t.status.is_final
        ]
        events += [
            WindowLoggedOut(now, w.id, w.staff) for w in self._windows.values() if w.staff
        ]
        events += [
            AnomalyEnded(now, w.id, kind) for w in self._windows.values() for kind in w.anomalies
        ]
        events.append(self._checkpoint(day, now))
        return self._commit(events, self._windows.values())

    def _checkpoint(self, day: date, now: datetime) -> DayStarted:
        windows = self._windows.values()
        return DayStarted(
            now,
            day,
            ordinal=self._ordinal,
            closed=tuple(w.id for w in windows if w.closed),
            window_services=tuple((w.id, tuple(w.services.items())) for w in windows),
            strategies=tuple((w.id, w.strategy.spec) for w in windows),
            service_seconds=tuple(self._service_seconds.items()),
            service_terms=tuple((s, hours, quota) for s, (hours, quota) in self._terms.items()),
        )

    # -------------------------------------------------------------- tickets

    def issue(
        self,
        requested: str,
        source: Source,
        *,
        now: datetime,
        citizen_ref: str | None = None,
        priority_group: str | None = None,
        appointment_slot: datetime | None = None,
    ) -> list[Event]:
        """Take a ticket for a service or a package (Q2, Q4)."""
        self._require_day()
        services = self.layout.services_of(requested)
        if services is None:
            raise Rejected(Reason.UNKNOWN_SERVICE, f"no service or package {requested!r}")
        if (source is Source.APPOINTMENT) != (appointment_slot is not None):
            raise Rejected(Reason.BAD_REQUEST, "an appointment ticket, and only one, has a slot")
        if priority_group is not None and source is not Source.PRIORITY:
            raise Rejected(Reason.BAD_REQUEST, "only a priority ticket names a priority group")
        for service_id in services:
            self._check_available(service_id, now)
        prefix = self.layout.prefix_of(requested)
        sequence = self._numbers.get(prefix, 0) + 1
        number = f"{prefix}{sequence:0{self.layout.number_width}d}"
        ordinal = self._ordinal + 1
        issued = TicketIssued(
            now,
            ticket_id=f"{self._day_text}-{number}",
            number=number,
            prefix=prefix,
            requested=requested,
            services=services,
            source=source.value,
            ordinal=ordinal,
            key=ordinal * KEY_SPACING,
            citizen_ref=citizen_ref,
            priority_group=priority_group,
            appointment_slot=appointment_slot,
        )
        return self._commit([issued], ())

    def cancel(self, ticket_id: str, *, now: datetime, reason: str = "citizen") -> list[Event]:
        """Cancel a ticket in any live state (the citizen left, a duplicate)."""
        ticket = self._ticket(ticket_id)
        if ticket.status.is_final:
            raise Rejected(Reason.TICKET_ALREADY_ENDED, f"{ticket.number} is {ticket.status}")
        touched = [self._windows[ticket.window]] if ticket.window else []
        return self._commit([TicketCancelled(now, ticket_id, reason)], touched)

    # -------------------------------------------------------------- calling

    def call_next(self, window_id: str, *, now: datetime) -> list[Event]:
        """Call the ticket the window's strategy picks (Q7)."""
        window = self._ready_to_call(window_id)
        picked = window.strategy.pick(_WindowView(self, window, now))
        if picked is None:
            raise Rejected(Reason.NOTHING_WAITING, f"nobody waits for window {window_id}")
        return self._call(window, self._tickets[picked[0]], picked[1], now)

    def call_ticket(self, window_id: str, ticket_id: str, *, now: datetime) -> list[Event]:
        """Call a named ticket from the waiting list, or resume one held here."""
        window = self._ready_to_call(window_id)
        ticket = self._ticket(ticket_id)
        if ticket.status is Status.HELD and ticket.window == window.id:
            return self._call(window, ticket, "picked", now)
        if ticket.status is not Status.WAITING:
            raise Rejected(Reason.TICKET_NOT_WAITING, f"{ticket.number} is {ticket.status}")
        if not self._callable_by(window, ticket):
            raise Rejected(Reason.NOT_SERVED_HERE, f"{window_id} cannot call {ticket.number}")
        return self._call(window, ticket, "picked", now)

    def recall(self, window_id: str, *, now: datetime) -> list[Event]:
        window, ticket = self._current(window_id, Status.CALLED)
        return self._commit(
            [TicketRecalled(now, ticket.id, ticket.number, window.id, ticket.recalls + 1)], ()
        )

    def start(self, window_id: str, *, now: datetime) -> list[Event]:
        """The citizen has arrived at the window: service begins."""
        window, ticket = self._current(window_id, Status.CALLED)
        return self._commit([TicketStarted(now, ticket.id, window.id)], (window,))

    def finish(self, window_id: str, *, now: datetime) -> list[Event]:
        """Service done; a package ticket goes on to its next service."""
        window, ticket = self._current(window_id, Status.CALLED, Status.SERVING)
        events: list[Event] = []
        started_at = ticket.started_at
        if ticket.status is Status.CALLED:
            # A clerk who never presses start still served from the call on;
            # learning 0 s here would drag every estimate toward nothing.
            events.append(TicketStarted(now, ticket.id, window.id))
            started_at = ticket.called_at
        assert started_at is not None
        seconds = max(0.0, (now - started_at).total_seconds())
        if ticket.step + 1 < len(ticket.services):
            next_service = ticket.services[ticket.step + 1]
            step = TicketStepCompleted(
                now, ticket.id, window.id, ticket.service, next_service, seconds
            )
            events.append(step)
        else:
            events.append(TicketFinished(now, ticket.id, window.id, ticket.service, seconds))
        return self._commit(events, (window,))

    def skip(self, window_id: str, *, now: datetime) -> list[Event]:
        """The called citizen did not come: back behind N people, or abandoned
        after the policy's number of chances."""
        window, ticket = self._current(window_id, Status.CALLED)
        policy = self.layout.no_show
        skips = ticket.skips + 1
        event: Event
        if ticket.skips < policy.max_requeues:
            lane = self._queues[ticket.service].main
            key = key_behind(lane, policy.requeue_behind, self._end_key(lane))
            event = TicketSkipped(now, ticket.id, window.id, skips, key)
        else:
            event = TicketAbandoned(now, ticket.id, window.id, skips)
        return self._commit([event], (window,))

    def transfer(
        self,
        window_id: str,
        *,
        now: datetime,
        to_service: str | None = None,
        to_window: str | None = None,
    ) -> list[Event]:
        """Send the current ticket to another service, to a named window, or
        both; it keeps its place by original issue order."""
        window, ticket = self._current(window_id, Status.CALLED, Status.SERVING)
        if to_service is None and to_window is None:
            raise Rejected(Reason.BAD_REQUEST, "transfer needs a service or a window")
        service_id = to_service or ticket.service
        if service_id not in self.layout.services:
            raise Rejected(Reason.UNKNOWN_SERVICE, f"no service {service_id!r}")
        if to_window is not None:
            target = self._window(to_window)
            if target is window:
                raise Rejected(Reason.BAD_REQUEST, "cannot transfer a ticket to its own window")
            if target.closed:
                raise Rejected(Reason.WINDOW_CLOSED, f"window {to_window} is closed")
            if service_id not in target.services:
                raise Rejected(Reason.NOT_SERVED_HERE, f"window {to_window} does not serve it")
        event = TicketTransferred(now, ticket.id, window.id, service_id, to_window)
        return self._commit([event], (window,))

    def hold(self, window_id: str, *, now: datetime) -> list[Event]:
        """Park the current citizen (gone to fetch a document); the window is
        free to call the next one meanwhile."""
        window, ticket = self._current(window_id, Status.CALLED, Status.SERVING)
        return self._commit([TicketHeld(now, ticket.id, window.id)], (window,))

    def release(self, window_id: str, ticket_id: str, *, now: datetime) -> list[Event]:
        """The held citizen is back: the ticket waits for this window again,
        ahead of later tickets."""
        window = self._window(window_id)
        ticket = self._ticket(ticket_id)
        if ticket.status is not Status.HELD or ticket.window != window.id:
            raise Rejected(Reason.TICKET_NOT_HELD, f"{ticket.number} is not held at {window_id}")
        return self._commit([TicketReleased(now, ticket.id, window.id)], (window,))

    # -------------------------------------------------------------- windows

    def login(self, window_id: str, staff_id: str, *, now: datetime) -> list[Event]:
        self._require_day()
        window = self._window(window_id)
        if window.closed:
            raise Rejected(Reason.WINDOW_CLOSED, f"window {window_id} is closed")
        if window.staff is not None:
            raise Rejected(Reason.ALREADY_LOGGED_IN, f"{window.staff} is logged in at {window_id}")
        elsewhere = self._staff_at.get(staff_id)
        if elsewhere is not None:
            raise Rejected(Reason.STAFF_ELSEWHERE, f"{staff_id} is logged in at {elsewhere}")
        return self._commit([WindowLoggedIn(now, window.id, staff_id)], (window,), attendance=True)

    def logout(self, window_id: str, *, now: datetime) -> list[Event]:
        window = self._staffed(window_id)
        if window.current is not None:
            raise Rejected(Reason.WINDOW_BUSY, f"window {window_id} has a ticket in hand")
        assert window.staff is not None
        return self._commit(
            [WindowLoggedOut(now, window.id, window.staff)], (window,), attendance=True
        )

    def pause(
        self, window_id: str, reason: str, *, now: datetime, message: str | None = None
    ) -> list[Event]:
        """Pause with a reason; the window screen shows ``message`` (Q12)."""
        window = self._staffed(window_id)
        if window.pause is not None:
            raise Rejected(Reason.WINDOW_PAUSED, f"window {window_id} is already paused")
        if window.current is not None:
            raise Rejected(Reason.WINDOW_BUSY, f"window {window_id} has a ticket in hand")
        pause_reason = self.layout.pause_reasons.get(reason)
        if pause_reason is None:
            raise Rejected(Reason.UNKNOWN_PAUSE_REASON, f"no pause reason {reason!r}")
        text = message if message is not None else pause_reason.message
        return self._commit(
            [WindowPaused(now, window.id, reason, text)], (window,), attendance=True
        )

    def resume(self, window_id: str, *, now: datetime) -> list[Event]:
        window = self._staffed(window_id)
        if window.pause is None:
            raise Rejected(Reason.WINDOW_NOT_PAUSED, f"window {window_id} is not paused")
        return self._commit([WindowResumed(now, window.id)], (window,), attendance=True)

    def close_window(self, window_id: str, *, now: datetime) -> list[Event]:
        """Take a window out of service; whoever is logged in is logged out,
        and tickets sent to it or held there go back to their service's
        queue, so nobody waits for a window that will not call."""
        window = self._window(window_id)
        if window.closed:
            raise Rejected(Reason.WRONG_STATE, f"window {window_id} is already closed")
        if window.current is not None:
            raise Rejected(Reason.WINDOW_BUSY, f"window {window_id} has a ticket in hand")
        stranded = [*window.own.ticket_ids(), *window.held]
        events: list[Event] = [
            TicketTransferred(now, ticket_id, window.id, self._tickets[ticket_id].service, None)
            for ticket_id in stranded
        ]
        if window.staff is not None:
            events.append(WindowLoggedOut(now, window.id, window.staff))
        events.append(WindowClosed(now, window.id))
        return self._commit(events, (window,), attendance=True)

    def open_window(self, window_id: str, *, now: datetime) -> list[Event]:
        window = self._window(window_id)
        if not window.closed:
            raise Rejected(Reason.WRONG_STATE, f"window {window_id} is not closed")
        return self._commit([WindowOpened(now, window.id)], (window,), attendance=True)

    def set_window_services(
        self, window_id: str, services: Mapping[str, int], *, now: datetime
    ) -> list[Event]:
        """Change which services a window takes and their weights (Q7)."""
        window = self._window(window_id)
        if not services:
            raise Rejected(Reason.BAD_REQUEST, "a window serves at least one service")
        for service_id, weight in services.items():
            if service_id not in self.layout.services:
                raise Rejected(Reason.UNKNOWN_SERVICE, f"no service {service_id!r}")
            if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
                raise Rejected(Reason.BAD_REQUEST, f"weight of {service_id!r} must be an int ≥ 1")
        event = WindowServicesChanged(now, window.id, tuple(services.items()))
        return self._commit([event], (window,))

    def set_strategy(
        self, spec: StrategySpec, *, now: datetime, scope: str = "all", target: str = ""
    ) -> list[Event]:
        """Set the calling strategy for one window, a group, an area or all (Q7)."""
        try:
            build_strategy(spec)
        except StrategyError as exc:
            raise Rejected(Reason.BAD_REQUEST, str(exc)) from exc
        window_ids = self._strategy_targets(scope, target)
        event = StrategyChanged(now, scope, target, window_ids, spec)
        return self._commit([event], ())

    def set_service_terms(
        self,
        service_id: str,
        hours: Sequence[Sequence[str]],
        daily_quota: int | None,
        *,
        now: datetime,
    ) -> list[Event]:
        """Change a service's opening hours and daily quota (Q4, Q14) from now on:
        ``hours`` is ``[["09:00", "12:00"], ...]`` on the weekdays the
        configuration gives ("24:00" ends at midnight), ``daily_quota`` None
        for unlimited. Tickets already issued stay; a quota below today's count
        simply refuses further tickets. The change outlives the day."""
        service = self.layout.services.get(service_id)
        if service is None:
            raise Rejected(Reason.UNKNOWN_SERVICE, f"no service {service_id!r}")
        if daily_quota is not None and (
            isinstance(daily_quota, bool) or not isinstance(daily_quota, int) or daily_quota < 0
        ):
            raise Rejected(Reason.BAD_REQUEST, "the daily quota is an int ≥ 0, or None")
        if not hours:
            raise Rejected(Reason.BAD_REQUEST, "a service needs at least one opening interval")
        pairs: list[tuple[str, str]] = []
        for pair in hours:
            if len(pair) != 2 or not all(isinstance(part, str) for part in pair):
                raise Rejected(Reason.BAD_REQUEST, f"{pair!r} is not a [from, to] pair")
            pairs.append((pair[0], pair[1]))
        try:
            hours_from_texts(pairs, service.hours.weekdays)
        except ValueError as exc:
            raise Rejected(Reason.BAD_REQUEST, f"bad hours: {exc}") from exc
        ordered = tuple(sorted(pairs))  # "HH:MM" texts sort as the times do
        event = ServiceTermsChanged(now, service_id, ordered, daily_quota)
        return self._commit([event], ())

    def check_clock(self, *, now: datetime) -> list[Event]:
        """Raise and clear attendance anomalies as time passes (W1); the
        server calls it on its timer, so nothing else has to poll."""
        events = [e for w in self._windows.values() for e in self._attendance_changes(w, now)]
        return self._commit(events, ())

    # -------------------------------------------------------------- queries

    def ticket(self, ticket_id: str) -> Ticket:
        """A ticket of the current day; do not mutate it."""
        return self._ticket(ticket_id)

    def tickets(self) -> Iterable[Ticket]:
        return self._tickets.values()

    def window(self, window_id: str) -> WindowRuntime:
        """A window's live state; do not mutate it."""
        return self._window(window_id)

    def windows(self) -> Iterable[WindowRuntime]:
        return self._windows.values()

    def window_state(self, window_id: str) -> WindowState:
        return self._state(self._window(window_id))

    def current_ticket(self, window_id: str) -> Ticket | None:
        current = self._window(window_id).current
        return None if current is None else self._tickets[current]

    def screen_windows(self, screen_id: str) -> list[WindowRuntime]:
        """The positions shown on one window screen (Q10), in layout order."""
        return [w for w in self._windows.values() if w.config.screen_id == screen_id]

    def waiting_count(self, service_id: str) -> int:
        return len(self._queues[service_id].main)

    def issued_today(self, service_id: str) -> int:
        """Tickets issued for the service today, what its daily quota counts."""
        return self._issued[service_id]

    def waiting_list(self, window_id: str, limit: int = 50) -> list[Ticket]:
        """Tickets this window may call, in queue order: the clerk's list."""
        window = self._window(window_id)
        lanes: list[Lane] = [window.own, *(self._queues[s].main for s in window.services)]
        entries = sorted(entry for lane in lanes for entry in _first(lane, limit))
        return [self._tickets[entry[2]] for entry in entries[:limit]]

    def open_windows(self, service_id: str) -> int:
        return sum(1 for w in self._serving_windows.get(service_id, ()) if w.is_open)

    def service_estimate(self, requested: str) -> Estimate:
        """What a citizen taking a ticket now would face; for a package, the
        wait for its first service. Tickets sent to a named window are that
        window's and not counted here."""
        services = self.layout.services_of(requested)
        if services is None:
            raise Rejected(Reason.UNKNOWN_SERVICE, f"no service or package {requested!r}")
        return self._estimate(services[0], self.waiting_count(services[0]))

    def ticket_estimate(self, ticket_id: str) -> Estimate:
        """Position and expected wait of a waiting ticket (silent calling, Q6)."""
        ticket = self._ticket(ticket_id)
        if ticket.status is not Status.WAITING:
            raise Rejected(Reason.TICKET_NOT_WAITING, f"{ticket.number} is {ticket.status}")
        if ticket.target_window is not None:
            target = self._windows[ticket.target_window]
            ahead = target.own.count_before(ticket.entry)
            if not target.is_open:
                return Estimate(ahead, None, 0)
            return Estimate(ahead, ahead * self._service_seconds[ticket.service] / 60.0, 1)
        ahead = self._queues[ticket.service].main.count_before(ticket.entry)
        return self._estimate(ticket.service, ahead)

    def average_service_minutes(self, service_id: str) -> float:
        return self._service_seconds[service_id] / 60.0

    def anomalies(self, window_id: str, now: datetime) -> list[Anomaly]:
        """Anomalies as of ``now``, whether or not ``check_clock`` ran since."""
        return self._anomalies_at(self._window(window_id), now)

    def snapshot(self) -> dict[str, Any]:
        """Everything the engine knows, as plain data: equal snapshots mean
        equal engines (the replay tests compare them)."""
        return {
            "day": self.day.isoformat() if self.day else None,
            "ordinal": self._ordinal,
            "numbers": dict(self._numbers),
            "issued": dict(self._issued),
            "service_seconds": dict(self._service_seconds),
            "service_terms": {s: [[list(i) for i in h], q] for s, (h, q) in self._terms.items()},
            "queues": {
                s: [q.main.ticket_ids(), q.priority.ticket_ids(), q.appointments.ticket_ids()]
                for s, q in self._queues.items()
            },
            "windows": {w.id: self._window_snapshot(w) for w in self._windows.values()},
            "tickets": {t.id: _ticket_snapshot(t) for t in self._tickets.values()},
        }

    # -------------------------------------------------------------- checks

    def _require_day(self) -> date:
        if self.day is None:
            raise Rejected(Reason.DAY_NOT_STARTED, "no business day has been started")
        return self.day

    def _ticket(self, ticket_id: str) -> Ticket:
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            raise Rejected(Reason.UNKNOWN_TICKET, f"no ticket {ticket_id!r} today")
        return ticket

    def _window(self, window_id: str) -> WindowRuntime:
        window = self._windows.get(window_id)
        if window is None:
            raise Rejected(Reason.UNKNOWN_WINDOW, f"no window {window_id!r}")
        return window

    def _staffed(self, window_id: str) -> WindowRuntime:
        window = self._window(window_id)
        if window.staff is None:
            raise Rejected(Reason.NOT_LOGGED_IN, f"nobody is logged in at {window_id}")
        return window

    def _ready_to_call(self, window_id: str) -> WindowRuntime:
        window = self._staffed(window_id)
        if window.pause is not None:
            raise Rejected(Reason.WINDOW_PAUSED, f"window {window_id} is paused")
        if window.current is not None:
            raise Rejected(Reason.WINDOW_BUSY, f"window {window_id} has a ticket in hand")
        return window

    def _current(self, window_id: str, *allowed: Status) -> tuple[WindowRuntime, Ticket]:
        window = self._window(window_id)
        if window.current is None:
            raise Rejected(Reason.NO_CURRENT_TICKET, f"window {window_id} has no ticket in hand")
        ticket = self._tickets[window.current]
        if ticket.status not in allowed:
            raise Rejected(Reason.WRONG_STATE, f"{ticket.number} is {ticket.status}")
        return window, ticket

    def _check_available(self, service_id: str, now: datetime) -> None:
        service = self.layout.services[service_id]
        if not service.hours.is_open(now):
            raise Rejected(Reason.OUTSIDE_HOURS, f"{service.name} is outside its opening hours")
        if service.daily_quota is not None and self._issued[service_id] >= service.daily_quota:
            raise Rejected(Reason.QUOTA_EXHAUSTED, f"{service.name}: today's quota is used up")
        if not any(w.is_open for w in self._serving_windows.get(service_id, ())):
            raise Rejected(Reason.NO_OPEN_WINDOW, f"no open window serves {service.name}")

    def _callable_by(self, window: WindowRuntime, ticket: Ticket) -> bool:
        if ticket.target_window is not None:
            return ticket.target_window == window.id
        return ticket.service in window.services

    def _strategy_targets(self, scope: str, target: str) -> tuple[str, ...]:
        windows = self.layout.windows.values()
        if scope == "all":
            return tuple(self._windows)
        if scope == "window":
            return (self._window(target).id,)
        if scope == "group":
            chosen = tuple(w.id for w in windows if target in w.groups)
        elif scope == "area":
            chosen = tuple(w.id for w in windows if w.area == target)
        else:
            raise Rejected(Reason.BAD_REQUEST, f"scope must be one of {', '.join(STRATEGY_SCOPES)}")
        if not chosen:
            raise Rejected(Reason.BAD_REQUEST, f"no window in {scope} {target!r}")
        return chosen

    def _end_key(self, lane: Lane) -> int:
        """A key behind everybody in ``lane`` (earlier no-shows put last
        included) and ahead of the next ticket to be issued."""
        last = lane.at(len(lane) - 1)[0] + 1 if len(lane) else 0
        return max(last, self._ordinal * KEY_SPACING + KEY_SPACING // 2)

    # -------------------------------------------------------------- derived

    def _anomalies_at(self, window: WindowRuntime, now: datetime) -> list[Anomaly]:
        """Attendance is judged in working hours only: a break that runs into
        the lunch closure, or an empty window at night, is nobody's fault."""
        opened = self.layout.window_hours(window.config).period_start(now)
        if opened is None:
            return []
        found: list[Anomaly] = []
        if window.pause is not None:
            limit = timedelta(minutes=window.pause.reason.limit_minutes)
            if now - window.pause.since > limit:
                found.append(Anomaly.OVERLONG_PAUSE)
        if window.staff is None and not window.closed:
            grace = timedelta(minutes=self.layout.attendance.login_grace_minutes)
            if now - opened >= grace:
                if not window.logged_in_today:
                    found.append(Anomaly.LATE_LOGIN)
                elif window.logged_out_at is not None and now - window.logged_out_at >= grace:
                    found.append(Anomaly.ABSENT)
        return found

    def _estimate(self, service_id: str, ahead: int) -> Estimate:
        open_windows = self.open_windows(service_id)
        if not open_windows:
            return Estimate(ahead, None, 0)
        minutes = ahead * self._service_seconds[service_id] / 60.0 / open_windows
        return Estimate(ahead, minutes, open_windows)

    def _window_snapshot(self, window: WindowRuntime) -> dict[str, Any]:
        paused = window.pause
        pause = paused and [paused.reason.code, paused.message, str(paused.since)]
        return {
            "state": self._state(window).value,
            "staff": window.staff,
            "closed": window.closed,
            "pause": pause,
            "current": window.current,
            "held": list(window.held),
            "own": window.own.ticket_ids(),
            "services": dict(window.services),
            "strategy": window.strategy.spec.to_json(),
            "logged_in_today": window.logged_in_today,
            "logged_out_at": str(window.logged_out_at),
            "anomalies": {k.value: str(v) for k, v in window.anomalies.items()},
        }

    # -------------------------------------------------------------- commit

    def _call(self, window: WindowRuntime, ticket: Ticket, rule: str, now: datetime) -> list[Event]:
        assert window.staff is not None
        event = TicketCalled(
            now, ticket.id, ticket.number, window.id, window.staff, ticket.service, rule
        )
        return self._commit([event], (window,))

    def _attendance_changes(self, window: WindowRuntime, now: datetime) -> list[Event]:
        found = self._anomalies_at(window, now)
        active = window.anomalies
        started = [AnomalyStarted(now, window.id, k) for k in found if k not in active]
        ended = [AnomalyEnded(now, window.id, k) for k in active if k not in found]
        return [*started, *ended]

    def _commit(
        self, events: list[Event], touched: Iterable[WindowRuntime], *, attendance: bool = False
    ) -> list[Event]:
        """Apply ``events`` and add a ``window.state_changed`` for every touched
        window whose visible state changed. With ``attendance`` (logins,
        pauses, closing) the touched windows' anomalies are judged again at
        once, so a late clerk's anomaly ends when he logs in, not a timer later."""
        before = [(window, self._state(window)) for window in touched]
        for item in events:
            self._appliers[type(item)](item)
        if not before:
            return events
        at = events[-1].at
        for window, old in before:
            new = self._state(window)
            if new is not old:
                events.append(self._state_changed(window, old, new, at))
            if attendance:
                for change in self._attendance_changes(window, at):
                    self._appliers[type(change)](change)
                    events.append(change)
        return events

    def _state_changed(
        self, window: WindowRuntime, old: WindowState, new: WindowState, at: datetime
    ) -> WindowStateChanged:
        number = self._tickets[window.current].number if window.current else None
        message = window.pause.message if window.pause else None
        return WindowStateChanged(
            at, window.id, window.config.screen_id, old.value, new.value, number, message
        )



def _first(lane: Lane, limit: int) -> Sequence[tuple[int, int, str]]:
    return [lane.at(i) for i in range(min(limit, len(lane)))]


def _ticket_snapshot(ticket: Ticket) -> dict[str, Any]:
    return {
        "number": ticket.number,
        "services": list(ticket.services),
        "step": ticket.step,
        "source": ticket.source.value,
        "status": ticket.status.value,
        "window": ticket.window,
        "target_window": ticket.target_window,
        "key": ticket.key,
        "skips": ticket.skips,
        "recalls": ticket.recalls,
        "issued_at": str(ticket.issued_at),
        "enqueued_at": str(ticket.enqueued_at),
        "started_at": str(ticket.started_at),
        "citizen_ref": ticket.citizen_ref,
        "priority_group": ticket.priority_group,
        "appointment_slot": str(ticket.appointment_slot),
        "nodes": [[n.kind, str(n.at), n.window, n.service] for n in ticket.nodes],
    }
