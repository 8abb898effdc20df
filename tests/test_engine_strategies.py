"""Calling strategies (Q7): which ticket a window calls, and who may set that."""

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from queueing import Layout, Reason, Source, StrategySpec
from queueing.events import StrategyChanged, TicketCalled
from tests.engine_kit import Hall, only, refused, small_layout

FIFO = StrategySpec.of("fifo")
def w1_serving(services: dict[str, int]) -> Layout:
    """The test hall with W1 taking ``services`` at these weights."""
    windows = dict(small_layout().windows)
    windows["W1"] = replace(windows["W1"], services=services)
    return small_layout(windows=windows)


def call(hall: Hall, window_id: str) -> tuple[str, str]:
    """Call next a minute later; (number called, rule that chose it)."""
    hall.clock.tick()
    called = only(hall.do("call_next", window_id), TicketCalled)
    return called.number, called.rule


def serve_all(hall: Hall, window_id: str, count: int) -> list[str]:
    """Call and finish ``count`` tickets in a row; the numbers called."""
    numbers = []
    for _ in range(count):
        numbers.append(call(hall, window_id)[0])
        hall.do("finish", window_id)
    return numbers


def issue_now(hall: Hall, service: str, source: Source = Source.WALK_IN, **kw: Any) -> str:
    """Issue without moving the clock, so several tickets share one moment."""
    return hall.number(hall.do("issue", service, source, **kw)[0].ticket_id)  # type: ignore[attr-defined]


def set_strategy(hall: Hall, *rules: Any, scope: str = "all", target: str = "") -> StrategyChanged:
    events = hall.do("set_strategy", StrategySpec.of(*rules), scope=scope, target=target)
    return only(events, StrategyChanged)


# -------------------------------------------------------------------- fifo


def test_fifo_calls_across_the_windows_services_in_issue_order() -> None:
    hall = Hall(logged_in=("W1",))
    set_strategy(hall, "fifo", scope="window", target="W1")
    for service in ("tax", "biz", "tax", "biz"):
        hall.take(service)
    assert call(hall, "W1") == ("B001", "fifo")
    hall.do("finish", "W1")
    assert serve_all(hall, "W1", 3) == ["A001", "B002", "A002"]


def test_fifo_ignores_service_weights() -> None:
    hall = Hall(w1_serving({"biz": 1, "tax": 5}), logged_in=("W1",))
    set_strategy(hall, "fifo")
    hall.take("biz")
    hall.take("tax")
    assert serve_all(hall, "W1", 2) == ["A001", "B001"]


# -------------------------------------------------------- service priority


def test_service_priority_calls_the_heavier_service_first() -> None:
    hall = Hall(w1_serving({"biz": 1, "tax": 2}), logged_in=("W1",))
    set_strategy(hall, "service_priority")
    for service in ("biz", "biz", "tax", "tax"):
        hall.take(service)
    assert call(hall, "W1") == ("B001", "service_priority")
    hall.do("finish", "W1")
    assert serve_all(hall, "W1", 3) == ["B002", "A001", "A002"]


def test_service_priority_is_first_come_first_served_within_one_weight() -> None:
    hall = Hall(w1_serving({"biz": 2, "tax": 2, "fund": 1}), logged_in=("W1",))
    set_strategy(hall, "service_priority")
    for service in ("fund", "tax", "biz", "tax", "fund"):
        hall.take(service)
    assert serve_all(hall, "W1", 5) == ["B001", "A001", "B002", "D001", "D002"]


def test_service_priority_follows_weights_set_live() -> None:
    hall = Hall(logged_in=("W2",))
    set_strategy(hall, "service_priority")
    hall.do("set_window_services", "W2", {"biz": 2, "tax": 3})  # W2 took biz at weight 2
    hall.take("biz")
    hall.take("tax")
    assert serve_all(hall, "W2", 2) == ["B001", "A001"]


# ------------------------------------------------------------------ weighted


def test_weighted_prefers_the_heavier_service_at_equal_wait() -> None:
    hall = Hall(w1_serving({"biz": 1, "tax": 3}), logged_in=("W1",))
    set_strategy(hall, "weighted")
    hall.clock.tick()
    issue_now(hall, "biz")
    issue_now(hall, "tax")
    assert call(hall, "W1") == ("B001", "weighted")


def test_weighted_prefers_a_heavier_service_over_a_slightly_older_light_ticket() -> None:
    hall = Hall(w1_serving({"biz": 1, "tax": 3}), logged_in=("W1",))
    set_strategy(hall, "weighted")
    hall.take("biz")  # waits 2 minutes at the call, weight 1
    hall.take("tax")  # waits 1 minute at the call, weight 3
    assert call(hall, "W1")[0] == "B001"


def test_weighted_lets_a_long_waiting_light_service_win_eventually() -> None:
    hall = Hall(w1_serving({"biz": 1, "tax": 3}), logged_in=("W1",))
    set_strategy(hall, "weighted")
    hall.take("biz")
    hall.clock.tick(30)
    hall.take("tax")
    assert call(hall, "W1") == ("A001", "weighted")


def test_weighted_breaks_an_exact_tie_by_issue_order() -> None:
    hall = Hall(logged_in=("W1",))  # biz and tax both weight 1 at W1
    set_strategy(hall, "weighted")
    hall.clock.tick()
    issue_now(hall, "tax")
    issue_now(hall, "biz")
    assert call(hall, "W1")[0] == "B001"


# ------------------------------------------------------------ priority groups


def test_priority_groups_first_calls_a_priority_ticket_ahead_of_walk_ins() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.take("tax")
    hall.take("biz", Source.PRIORITY, priority_group="elderly")
    hall.take("tax", Source.PRIORITY, priority_group="disabled")
    assert call(hall, "W1") == ("A002", "priority_groups_first")
    hall.do("finish", "W1")
    assert call(hall, "W1") == ("B002", "priority_groups_first")
    hall.do("finish", "W1")
    assert call(hall, "W1") == ("A001", "fifo")


def test_without_the_priority_rule_a_priority_ticket_waits_its_turn() -> None:
    hall = Hall(logged_in=("W1",))
    set_strategy(hall, "fifo")
    hall.take("biz")
    hall.take("biz", Source.PRIORITY, priority_group="military")
    assert serve_all(hall, "W1", 2) == ["A001", "A002"]


def test_priority_groups_first_only_considers_the_windows_services() -> None:
    hall = Hall(logged_in=("W2", "W3"))
    hall.take("biz")
    hall.take("tax", Source.PRIORITY, priority_group="elderly")
    assert call(hall, "W2") == ("A001", "fifo")


# ---------------------------------------------------------------- appointments


def walk_in_then_appointment(hall: Hall, slot_after_call: float) -> None:
    """A walk-in, then an appointment whose slot is ``slot_after_call`` minutes
    after the moment ``call`` will call (one minute from now)."""
    issue_now(hall, "biz")
    slot = hall.clock.now + timedelta(minutes=1 + slot_after_call)
    issue_now(hall, "biz", Source.APPOINTMENT, appointment_slot=slot)


def test_an_appointment_due_within_ten_minutes_is_called_ahead_of_walk_ins() -> None:
    hall = Hall(logged_in=("W1",))
    walk_in_then_appointment(hall, slot_after_call=10)
    assert call(hall, "W1") == ("A002", "appointments_due")


def test_an_appointment_whose_slot_has_passed_is_called_ahead_of_walk_ins() -> None:
    hall = Hall(logged_in=("W1",))
    walk_in_then_appointment(hall, slot_after_call=-30)
    assert call(hall, "W1") == ("A002", "appointments_due")


def test_an_appointment_whose_slot_is_later_waits_behind_earlier_walk_ins() -> None:
    hall = Hall(logged_in=("W1",))
    walk_in_then_appointment(hall, slot_after_call=11)
    assert call(hall, "W1") == ("A001", "fifo")


def test_the_earliest_due_appointment_is_called_first() -> None:
    hall = Hall(logged_in=("W1",))
    soon = hall.clock.now + timedelta(minutes=5)
    hall.take("biz", Source.APPOINTMENT, appointment_slot=soon + timedelta(minutes=3))
    hall.take("tax", Source.APPOINTMENT, appointment_slot=soon)
    assert call(hall, "W1") == ("B001", "appointments_due")


def test_appointments_due_early_minutes_is_a_parameter() -> None:
    hall = Hall(logged_in=("W1",))
    set_strategy(hall, ("appointments_due", {"early_minutes": 30}), "fifo")
    walk_in_then_appointment(hall, slot_after_call=30)
    assert call(hall, "W1") == ("A002", "appointments_due")


# ----------------------------------------------------------------- transfers


def test_transfers_first_calls_a_ticket_sent_here_ahead_of_older_tickets() -> None:
    hall = Hall(logged_in=("W1", "W2"))
    hall.take("biz")
    sent = hall.take("biz")
    hall.clock.tick()
    hall.do("call_ticket", "W1", sent)
    hall.do("transfer", "W1", to_window="W2")
    assert call(hall, "W2") == ("A002", "transfers_first")


def test_without_transfers_first_a_ticket_sent_here_keeps_its_issue_order() -> None:
    hall = Hall(logged_in=("W1", "W2"))
    set_strategy(hall, "fifo", scope="window", target="W2")
    hall.take("biz")
    sent = hall.take("biz")
    hall.clock.tick()
    hall.do("call_ticket", "W1", sent)
    hall.do("transfer", "W1", to_window="W2")
    assert call(hall, "W2") == ("A001", "fifo")
    hall.do("finish", "W2")
    assert call(hall, "W2") == ("A002", "fifo")


def test_a_named_call_is_reported_as_picked() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    later = hall.take("biz")
    hall.clock.tick()
    assert only(hall.do("call_ticket", "W1", later), TicketCalled).rule == "picked"


# --------------------------------------------------------------- set_strategy


def test_set_strategy_for_one_window_changes_only_that_window() -> None:
    hall = Hall()
    changed = set_strategy(hall, "weighted", scope="window", target="W2")
    assert changed.type == "window.strategy_changed"
    assert (changed.scope, changed.target, changed.window_ids) == ("window", "W2", ("W2",))
    assert changed.spec == StrategySpec.of("weighted")
    assert hall.engine.window("W2").strategy.spec == StrategySpec.of("weighted")
    assert hall.engine.window("W1").strategy.spec == small_layout().default_strategy


def test_set_strategy_for_a_group_changes_its_windows() -> None:
    hall = Hall()
    changed = set_strategy(hall, "service_priority", scope="group", target="front")
    assert changed.window_ids == ("W1", "W2")
    specs = {w.id: w.strategy.spec for w in hall.engine.windows()}
    assert specs["W1"] == specs["W2"] == StrategySpec.of("service_priority")
    assert specs["W3"] == small_layout().default_strategy


def test_set_strategy_for_an_area_changes_its_windows() -> None:
    hall = Hall()
    changed = set_strategy(hall, "fifo", scope="area", target="F1B")
    assert changed.window_ids == ("W3", "W4")
    assert hall.engine.window("W4").strategy.spec == FIFO
    assert hall.engine.window("W5A").strategy.spec == small_layout().default_strategy


def test_set_strategy_for_all_changes_every_window() -> None:
    hall = Hall()
    changed = set_strategy(hall, "weighted")
    assert (changed.scope, changed.target) == ("all", "")
    assert changed.window_ids == ("W1", "W2", "W3", "W4", "W5A", "W5B")
    assert all(w.strategy.spec == StrategySpec.of("weighted") for w in hall.engine.windows())


def test_set_strategy_applies_live_to_the_next_call() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.take("biz", Source.PRIORITY, priority_group="elderly")
    hall.take("biz", Source.PRIORITY, priority_group="elderly")
    assert call(hall, "W1") == ("A002", "priority_groups_first")
    hall.do("finish", "W1")
    set_strategy(hall, "fifo", scope="window", target="W1")
    assert call(hall, "W1") == ("A001", "fifo")


def test_set_strategy_leaves_the_ticket_in_hand_alone() -> None:
    hall = Hall(logged_in=("W1",))
    held = hall.take("biz")
    hall.call("W1")
    events = hall.do("set_strategy", FIFO)
    assert [e.type for e in events] == ["window.strategy_changed"]
    assert hall.engine.current_ticket("W1") is not None
    assert hall.engine.current_ticket("W1").id == held  # type: ignore[union-attr]


def test_a_chain_without_an_ordering_rule_at_its_end_gets_fifo_appended() -> None:
    hall = Hall(w1_serving({"biz": 1, "tax": 3}), logged_in=("W1",))
    changed = set_strategy(hall, "priority_groups_first", scope="window", target="W1")
    assert changed.spec == StrategySpec.of("priority_groups_first")
    rules = [rule.name for rule in hall.engine.window("W1").strategy.rules]
    assert rules == ["priority_groups_first", "fifo"]
    hall.take("biz")
    hall.take("tax")
    assert call(hall, "W1") == ("A001", "fifo")


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param(StrategySpec.of("round_robin"), id="unknown-rule"),
        pytest.param(StrategySpec.of("transfers_first", "lottery"), id="unknown-rule-in-chain"),
        pytest.param(
            StrategySpec.of(("appointments_due", {"late_minutes": 5.0})), id="unknown-parameter"
        ),
        pytest.param(StrategySpec.of(("fifo", {"early_minutes": 5.0})), id="parameter-of-other"),
    ],
)
def test_an_unknown_rule_or_parameter_is_a_bad_request(spec: StrategySpec) -> None:
    hall = Hall()
    assert refused(hall, "set_strategy", spec) is Reason.BAD_REQUEST


def test_a_non_numeric_parameter_is_a_bad_request() -> None:
    hall = Hall()
    spec = StrategySpec.of(("appointments_due", {"early_minutes": "ten"}), "fifo")  # type: ignore[dict-item]
    assert refused(hall, "set_strategy", spec) is Reason.BAD_REQUEST


@pytest.mark.parametrize(
    ("scope", "target", "reason"),
    [
        pytest.param("floor", "1", Reason.BAD_REQUEST, id="unknown-scope"),
        pytest.param("group", "back", Reason.BAD_REQUEST, id="empty-group"),
        pytest.param("area", "F9Z", Reason.BAD_REQUEST, id="empty-area"),
        pytest.param("window", "W9", Reason.UNKNOWN_WINDOW, id="unknown-window"),
    ],
)
def test_a_strategy_for_nothing_is_refused(scope: str, target: str, reason: Reason) -> None:
    hall = Hall()
    assert refused(hall, "set_strategy", FIFO, scope=scope, target=target) is reason


def test_a_negative_parameter_is_a_bad_request() -> None:
    hall = Hall()
    spec = StrategySpec.of(("appointments_due", {"early_minutes": -5}), "fifo")
    assert refused(hall, "set_strategy", spec) is Reason.BAD_REQUEST
