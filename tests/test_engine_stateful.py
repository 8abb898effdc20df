"""Random operation sequences against the engine, checked against invariants.

Hypothesis drives every operation a hall has in any order, including the
ones that should be refused. After each step: no ticket lost or duplicated,
numbers unique and gap-free per prefix per day, a ticket in the hands of at
most one window, and a refused operation changed nothing. Every call is
checked against a naive reference picker that recomputes the strategy from
the tickets alone. At the end, replaying the JSON-encoded event log from empty
rebuilds the same state.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from queueing import (
    Engine,
    Event,
    Rejected,
    Source,
    Status,
    StrategySpec,
    Ticket,
    event_from_dict,
    event_to_dict,
)
from queueing.events import DayStarted, TicketCalled, WindowStateChanged
from queueing.windows import WindowRuntime
from tests.engine_kit import OPENING, small_layout

LAYOUT = small_layout()
WINDOWS = sorted(LAYOUT.windows)
REQUESTABLE = sorted([*LAYOUT.services, *LAYOUT.packages])
SERVICES = sorted(LAYOUT.services)
STAFF = ["zhang", "wang", "li", "zhao", "chen", "liu", "yang"]
PRE_RULES = ["transfers_first", "priority_groups_first", "appointments_due"]
ORDERINGS = ["fifo", "service_priority", "weighted"]

windows = st.sampled_from(WINDOWS)
strategy_specs = st.tuples(
    st.lists(st.sampled_from(PRE_RULES), unique=True),
    st.sampled_from(ORDERINGS),
    st.integers(0, 30),
).map(
    lambda parts: StrategySpec.of(
        *[
            (name, {"early_minutes": float(parts[2])}) if name == "appointments_due" else name
            for name in parts[0]
        ],
        parts[1],
    )
)


def reference_pick(engine: Engine, window: WindowRuntime, now: datetime) -> str | None:
    """The strategy's choice recomputed from tickets alone, without lanes.

    Ordering rules choose among queues (the window's own queue, one per
    service) and take the chosen queue's head; within a queue, order is by key.
    """
    waiting = [t for t in engine.tickets() if t.status is Status.WAITING]
    own = [t for t in waiting if t.target_window == window.id]
    shared = [t for t in waiting if t.target_window is None and t.service in window.services]

    def order(ticket: Ticket) -> tuple[int, int]:
        return ticket.key, ticket.ordinal

    def earliest(tickets: list[Ticket]) -> Ticket | None:
        return min(tickets, key=order, default=None)

    heads = [head for head in [earliest(own)] if head is not None]
    for service_id in window.services:
        head = earliest([t for t in shared if t.service == service_id])
        if head is not None:
            heads.append(head)

    def best_head(score: Any) -> Ticket | None:
        ranked = sorted(heads, key=lambda t: (-score(t), order(t)))
        return ranked[0] if ranked else None

    for strategy_rule in window.strategy.rules:
        chosen: Ticket | None = None
        if strategy_rule.name == "transfers_first":
            chosen = earliest(own)
        elif strategy_rule.name == "priority_groups_first":
            chosen = earliest([t for t in shared if t.source is Source.PRIORITY])
        elif strategy_rule.name == "appointments_due":
            booked = [t for t in shared if t.appointment_slot is not None]
            first = min(
                booked,
                key=lambda t: (int(t.appointment_slot.timestamp()), t.ordinal),  # type: ignore[union-attr]
                default=None,
            )
            early = timedelta(minutes=strategy_rule.params["early_minutes"])
            if first is not None and first.appointment_slot is not None:
                due = int(first.appointment_slot.timestamp()) <= (now + early).timestamp()
                chosen = first if due else None
        elif strategy_rule.name == "fifo":
            chosen = earliest(heads)
        elif strategy_rule.name == "service_priority":
            chosen = best_head(lambda t: window.services.get(t.service, 1))
        elif strategy_rule.name == "weighted":
            chosen = best_head(
                lambda t: window.services.get(t.service, 1)
                * ((now - t.enqueued_at).total_seconds() + 1.0)
            )
        else:
            raise AssertionError(f"reference does not know rule {strategy_rule.name}")
        if chosen is not None:
            return chosen.id
    return None


class HallMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine(LAYOUT)
        self.now = OPENING
        self.log: list[Event] = []

    @initialize(staffed=st.sets(windows, min_size=3))
    def open_the_day(self, staffed: set[str]) -> None:
        self.log += self.engine.start_day(self.now.date(), now=self.now)
        for window, staff in zip(sorted(staffed), STAFF, strict=False):
            self.log += self.engine.login(window, staff, now=self.now)

    def attempt(self, operation: str, *args: Any, **kwargs: Any) -> list[Event] | None:
        """Run an operation; when refused, prove that nothing changed."""
        before = self.engine.snapshot()
        try:
            events: list[Event] = getattr(self.engine, operation)(*args, now=self.now, **kwargs)
        except Rejected:
            assert self.engine.snapshot() == before, f"refused {operation} changed the state"
            return None
        self.log += events
        return events

    def ticket_ids(self, *statuses: Status) -> list[str]:
        return [t.id for t in self.engine.tickets() if t.status in statuses]

    @rule(minutes=st.integers(0, 20))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule(
        requests=st.lists(
            st.tuples(
                st.sampled_from(REQUESTABLE), st.sampled_from(list(Source)), st.integers(-30, 90)
            ),
            min_size=1,
            max_size=6,
        )
    )
    def citizens_take_tickets(self, requests: list[tuple[str, Source, int]]) -> None:
        for requested, source, slot_offset in requests:
            appointment = source is Source.APPOINTMENT
            slot = self.now + timedelta(minutes=slot_offset) if appointment else None
            group = "elderly" if source is Source.PRIORITY else None
            self.attempt(
                "issue",
                requested,
                source,
                citizen_ref="c",
                priority_group=group,
                appointment_slot=slot,
            )
            self.now += timedelta(seconds=20)

    @rule(window=windows, staff=st.sampled_from(STAFF))
    def log_in(self, window: str, staff: str) -> None:
        self.attempt("login", window, staff)

    @rule(window=windows)
    def log_out(self, window: str) -> None:
        self.attempt("logout", window)

    @rule(
        window=windows,
        then=st.lists(
            st.sampled_from(["recall", "start", "finish", "skip", "hold", "transfer"]), max_size=3
        ),
        to_service=st.sampled_from(SERVICES),
        to_window=st.none() | windows,
    )
    def serve(self, window: str, then: list[str], to_service: str, to_window: str | None) -> None:
        self.call_next(window)
        for operation in then:
            self.now += timedelta(minutes=2)
            if operation == "transfer":
                self.attempt("transfer", window, to_service=to_service, to_window=to_window)
            else:
                self.attempt(operation, window)

    @rule(window=windows)
    def call_next(self, window: str) -> None:
        runtime = self.engine.window(window)
        expected = reference_pick(self.engine, runtime, self.now)
        events = self.attempt("call_next", window)
        if events is None:
            ready = runtime.staff and runtime.pause is None and runtime.current is None
            assert not (ready and expected is not None), "a ready window refused to call"
            return
        called = events[0]
        assert isinstance(called, TicketCalled)
        assert called.ticket_id == expected, f"called {called.ticket_id}, reference {expected}"

    @rule(window=windows, pick=st.integers(0, 50))
    def call_a_named_ticket(self, window: str, pick: int) -> None:
        candidates = self.ticket_ids(Status.WAITING, Status.HELD)
        if candidates:
            ticket = self.engine.ticket(candidates[pick % len(candidates)])
            events = self.attempt("call_ticket", window, ticket.id)
            if events is not None and ticket.status is Status.CALLED:
                runtime = self.engine.window(window)
                was_sent_here = any(
                    n.kind in ("transferred", "released", "held") for n in ticket.nodes
                )
                assert ticket.service in runtime.services or was_sent_here

    @rule(window=windows, operation=st.sampled_from(["recall", "start", "finish", "skip", "hold"]))
    def work_the_current_ticket(self, window: str, operation: str) -> None:
        self.attempt(operation, window)

    @rule(window=windows, service=st.none() | st.sampled_from(SERVICES), to=st.none() | windows)
    def transfer(self, window: str, service: str | None, to: str | None) -> None:
        self.attempt("transfer", window, to_service=service, to_window=to)

    @rule(window=windows, pick=st.integers(0, 50))
    def release(self, window: str, pick: int) -> None:
        held = self.ticket_ids(Status.HELD)
        if held:
            self.attempt("release", window, held[pick % len(held)])

    @rule(pick=st.integers(0, 500))
    def cancel(self, pick: int) -> None:
        everything = [t.id for t in self.engine.tickets()]
        if everything:
            self.attempt("cancel", everything[pick % len(everything)])

    @rule(window=windows, reason=st.sampled_from(["break", "lunch", "nap"]))
    def pause(self, window: str, reason: str) -> None:
        self.attempt("pause", window, reason)

    @rule(window=windows, operation=st.sampled_from(["resume", "close_window", "open_window"]))
    def window_operation(self, window: str, operation: str) -> None:
        self.attempt(operation, window)

    @rule(
        spec=strategy_specs,
        scope=st.sampled_from(["all", "window", "group", "area"]),
        chosen=st.sampled_from([*WINDOWS, "front", "F1A", "F2A", ""]),
    )
    def change_strategy(self, spec: StrategySpec, scope: str, chosen: str) -> None:
        self.attempt("set_strategy", spec, scope=scope, target=chosen)

    @rule(
        window=windows,
        services=st.dictionaries(st.sampled_from(SERVICES), st.integers(1, 3), max_size=3),
    )
    def change_window_services(self, window: str, services: dict[str, int]) -> None:
        self.attempt("set_window_services", window, services)

    @rule()
    def check_the_clock(self) -> None:
        self.attempt("check_clock")

    @precondition(lambda self: len(self.log) > 200)
    @rule()
    def next_day(self) -> None:
        self.now = (self.now + timedelta(days=1)).replace(hour=9, minute=0)
        self.log += self.engine.start_day(self.now.date(), now=self.now)

    @invariant()
    def every_ticket_is_in_exactly_one_place(self) -> None:
        places: dict[str, list[str]] = {}
        for service_id in SERVICES:
            for ticket_id in self.engine.snapshot()["queues"][service_id][0]:
                places.setdefault(ticket_id, []).append(f"queue {service_id}")
        for window in self.engine.windows():
            for ticket_id in window.own.ticket_ids():
                places.setdefault(ticket_id, []).append(f"lane {window.id}")
            if window.current is not None:
                places.setdefault(window.current, []).append(f"hand {window.id}")
            for ticket_id in window.held:
                places.setdefault(ticket_id, []).append(f"held {window.id}")
        for ticket in self.engine.tickets():
            where = places.pop(ticket.id, [])
            if ticket.status.is_final:
                assert where == [], f"{ticket.number} {ticket.status} still at {where}"
            else:
                assert len(where) == 1, f"{ticket.number} {ticket.status} at {where}"
                kind = where[0].split()[0]
                expected = {"waiting": ("queue", "lane"), "held": ("held",)}.get(
                    ticket.status.value, ("hand",)
                )
                assert kind in expected, f"{ticket.number} {ticket.status} at {where}"
        assert places == {}, f"unknown tickets in the hall: {places}"

    @invariant()
    def numbers_are_unique_and_gap_free_per_prefix(self) -> None:
        by_prefix: dict[str, list[int]] = {}
        for ticket in self.engine.tickets():
            by_prefix.setdefault(ticket.prefix, []).append(int(ticket.number[len(ticket.prefix) :]))
        for numbers in by_prefix.values():
            assert sorted(numbers) == list(range(1, len(numbers) + 1))

    @invariant()
    def staff_are_at_one_window_at_most(self) -> None:
        staff = [w.staff for w in self.engine.windows() if w.staff is not None]
        assert len(staff) == len(set(staff))

    @invariant()
    def the_last_state_change_matches_each_window(self) -> None:
        last: dict[str, str] = {}
        for item in self.log:
            if isinstance(item, WindowStateChanged):
                last[item.window_id] = item.new
        for window_id, state in last.items():
            assert self.engine.window_state(window_id).value == state

    def teardown(self) -> None:
        encoded = json.dumps([event_to_dict(item) for item in self.log], ensure_ascii=False)
        decoded = [event_from_dict(d) for d in json.loads(encoded)]
        assert Engine.replay(LAYOUT, decoded).snapshot() == self.engine.snapshot()
        last_day = max(i for i, item in enumerate(decoded) if isinstance(item, DayStarted))
        from_checkpoint = Engine.replay(LAYOUT, decoded[last_day:])
        assert from_checkpoint.snapshot() == self.engine.snapshot()


HallMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_random_operation_sequences_keep_the_hall_consistent = HallMachine.TestCase
