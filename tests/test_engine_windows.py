"""Windows: visible states, pauses, logins, closing, shared screens, attendance."""

from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any

import pytest

from queueing import Anomaly, Hours, Reason, Source, Status, WindowState
from queueing.events import (
    AnomalyEnded,
    AnomalyStarted,
    Event,
    WindowPaused,
    WindowServicesChanged,
    WindowStateChanged,
)
from tests.engine_kit import OPENING, Hall, only, refused, small_layout

ALL_WINDOWS = ("W1", "W2", "W3", "W4", "W5A", "W5B")
def changes(events: list[Event]) -> list[WindowStateChanged]:
    return [event for event in events if isinstance(event, WindowStateChanged)]


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    """A moment of the test Tuesday."""
    return OPENING.replace(hour=hour, minute=minute, second=second)


def anomaly_events(events: list[Event]) -> set[tuple[str, str, str]]:
    return {
        (event.type, event.window_id, event.kind)
        for event in events
        if isinstance(event, AnomalyStarted | AnomalyEnded)
    }


# ------------------------------------------------------------------ states


def test_a_window_goes_through_its_visible_states() -> None:
    hall = Hall()
    seen: list[WindowStateChanged] = []
    assert hall.engine.window_state("W1") is WindowState.NOT_LOGGED_IN
    seen += changes(hall.do("login", "W1", "zhang"))
    assert hall.engine.window_state("W1") is WindowState.IDLE
    hall.take("biz")
    seen += changes(hall.do("call_next", "W1"))
    assert hall.engine.window_state("W1") is WindowState.CALLING
    seen += changes(hall.do("start", "W1"))
    assert hall.engine.window_state("W1") is WindowState.SERVING
    seen += changes(hall.do("finish", "W1"))
    assert hall.engine.window_state("W1") is WindowState.IDLE
    seen += changes(hall.do("pause", "W1", "break"))
    assert hall.engine.window_state("W1") is WindowState.PAUSED
    seen += changes(hall.do("resume", "W1"))
    assert hall.engine.window_state("W1") is WindowState.IDLE
    seen += changes(hall.do("close_window", "W1"))
    assert hall.engine.window_state("W1") is WindowState.CLOSED
    assert [(c.old, c.new) for c in seen] == [
        ("not_logged_in", "idle"),
        ("idle", "calling"),
        ("calling", "serving"),
        ("serving", "idle"),
        ("idle", "paused"),
        ("paused", "idle"),
        ("idle", "closed"),
    ]
    assert {c.window_id for c in seen} == {"W1"}
    assert {c.screen_id for c in seen} == {"W1"}


def test_a_state_change_shows_the_number_in_hand() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.clock.tick()
    calling = only(hall.do("call_next", "W1"), WindowStateChanged)
    assert (calling.new, calling.ticket_number, calling.message) == ("calling", "A001", None)
    assert calling.at == hall.clock.now
    serving = only(hall.do("start", "W1"), WindowStateChanged)
    assert (serving.new, serving.ticket_number) == ("serving", "A001")
    idle = only(hall.do("finish", "W1"), WindowStateChanged)
    assert (idle.new, idle.ticket_number, idle.message) == ("idle", None, None)


def test_a_state_change_to_paused_shows_the_pause_message() -> None:
    hall = Hall(logged_in=("W1",))
    paused = only(hall.do("pause", "W1", "lunch"), WindowStateChanged)
    assert (paused.old, paused.new) == ("idle", "paused")
    assert paused.message == "午休，13:30 恢复办理"
    assert paused.ticket_number is None
    resumed = only(hall.do("resume", "W1"), WindowStateChanged)
    assert (resumed.new, resumed.message) == ("idle", None)


def test_an_operation_that_keeps_the_state_emits_no_state_change() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.call("W1")
    assert changes(hall.do("recall", "W1")) == []
    assert changes(hall.do("set_window_services", "W1", {"biz": 1})) == []


# ------------------------------------------------------------------ pauses


def test_a_pause_shows_its_reasons_default_message() -> None:
    hall = Hall(logged_in=("W1",))
    paused = only(hall.do("pause", "W1", "break"), WindowPaused)
    assert (paused.window_id, paused.reason, paused.message) == ("W1", "break", "工作人员暂时离开")
    pause = hall.engine.window("W1").pause
    assert pause is not None
    assert (pause.reason.code, pause.message, pause.since) == (
        "break",
        "工作人员暂时离开",
        hall.clock.now,
    )


def test_a_pause_shows_a_custom_message_when_given() -> None:
    hall = Hall(logged_in=("W1",))
    events = hall.do("pause", "W1", "break", message="请到2号窗口办理")
    assert only(events, WindowPaused).message == "请到2号窗口办理"
    assert only(events, WindowStateChanged).message == "请到2号窗口办理"


def test_a_pause_needs_a_configured_reason() -> None:
    hall = Hall(logged_in=("W1",))
    assert refused(hall, "pause", "W1", "shopping") is Reason.UNKNOWN_PAUSE_REASON


def test_a_pause_is_refused_while_a_ticket_is_in_hand() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.call("W1")
    assert refused(hall, "pause", "W1", "break") is Reason.WINDOW_BUSY
    hall.do("start", "W1")
    assert refused(hall, "pause", "W1", "break") is Reason.WINDOW_BUSY


def test_a_paused_window_cannot_pause_again() -> None:
    hall = Hall(logged_in=("W1",))
    hall.do("pause", "W1", "break")
    assert refused(hall, "pause", "W1", "lunch") is Reason.WINDOW_PAUSED


def test_resume_of_a_window_that_is_not_paused_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    assert refused(hall, "resume", "W1") is Reason.WINDOW_NOT_PAUSED


def test_a_window_nobody_is_logged_in_to_cannot_pause() -> None:
    hall = Hall()
    assert refused(hall, "pause", "W1", "break") is Reason.NOT_LOGGED_IN


# ------------------------------------------------------------------ logins


def test_staff_logged_in_at_another_window_cannot_log_in_here() -> None:
    hall = Hall()
    hall.do("login", "W1", "zhang")
    assert refused(hall, "login", "W2", "zhang") is Reason.STAFF_ELSEWHERE


def test_a_window_someone_is_logged_in_to_refuses_another_login() -> None:
    hall = Hall()
    hall.do("login", "W1", "zhang")
    assert refused(hall, "login", "W1", "wang") is Reason.ALREADY_LOGGED_IN
    assert refused(hall, "login", "W1", "zhang") is Reason.ALREADY_LOGGED_IN


def test_a_closed_window_refuses_login() -> None:
    hall = Hall()
    hall.do("close_window", "W1")
    assert refused(hall, "login", "W1", "zhang") is Reason.WINDOW_CLOSED


def test_staff_may_move_to_another_window_after_logging_out() -> None:
    hall = Hall()
    hall.do("login", "W1", "zhang")
    events = hall.do("logout", "W1")
    assert [e.type for e in events] == ["window.logged_out", "window.state_changed"]
    hall.do("login", "W2", "zhang")
    assert hall.engine.window("W2").staff == "zhang"
    assert hall.engine.window_state("W1") is WindowState.NOT_LOGGED_IN


def test_logout_is_refused_with_a_ticket_in_hand() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.call("W1")
    assert refused(hall, "logout", "W1") is Reason.WINDOW_BUSY


def test_logout_of_a_window_nobody_is_logged_in_to_is_refused() -> None:
    hall = Hall()
    assert refused(hall, "logout", "W1") is Reason.NOT_LOGGED_IN


def test_login_to_an_unknown_window_is_refused() -> None:
    hall = Hall()
    assert refused(hall, "login", "W9", "zhang") is Reason.UNKNOWN_WINDOW


# ------------------------------------------------------------------ closing


def test_closing_a_window_logs_its_staff_out() -> None:
    hall = Hall(logged_in=("W1",))
    events = hall.do("close_window", "W1")
    assert [e.type for e in events] == [
        "window.logged_out",
        "window.closed",
        "window.state_changed",
    ]
    assert hall.engine.window("W1").staff is None
    hall.do("login", "W2", "staff-W1")  # no longer logged in anywhere


def test_closing_a_window_with_a_ticket_in_hand_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.call("W1")
    assert refused(hall, "close_window", "W1") is Reason.WINDOW_BUSY


def test_closing_a_closed_window_is_refused() -> None:
    hall = Hall()
    hall.do("close_window", "W1")
    assert refused(hall, "close_window", "W1") is Reason.WRONG_STATE


def test_a_reopened_window_waits_for_a_login() -> None:
    hall = Hall(logged_in=("W1",))
    hall.do("close_window", "W1")
    reopened = only(hall.do("open_window", "W1"), WindowStateChanged)
    assert (reopened.old, reopened.new) == ("closed", "not_logged_in")
    hall.do("login", "W1", "zhang")
    assert hall.engine.window_state("W1") is WindowState.IDLE


def test_opening_a_window_that_is_not_closed_is_refused() -> None:
    hall = Hall()
    assert refused(hall, "open_window", "W1") is Reason.WRONG_STATE


# ----------------------------------------------------------- one screen, two numbers


def test_two_positions_on_one_screen_call_independently_from_one_queue() -> None:
    hall = Hall(logged_in=("W5A", "W5B"))
    hall.take("fund")
    hall.take("fund")
    hall.take("fund")
    hall.clock.tick()
    first = only(hall.do("call_next", "W5A"), WindowStateChanged)
    second = only(hall.do("call_next", "W5B"), WindowStateChanged)
    assert (first.window_id, first.screen_id, first.ticket_number) == ("W5A", "S5", "D001")
    assert (second.window_id, second.screen_id, second.ticket_number) == ("W5B", "S5", "D002")
    hall.do("finish", "W5B")
    assert hall.number(hall.call("W5B")) == "D003"
    assert hall.engine.window_state("W5A") is WindowState.CALLING


def test_pausing_one_position_leaves_the_other_calling() -> None:
    hall = Hall(logged_in=("W5A", "W5B"))
    hall.do("pause", "W5A", "break")
    hall.take("fund")
    assert hall.engine.open_windows("fund") == 1
    assert hall.number(hall.call("W5B")) == "D001"
    assert hall.engine.window_state("W5A") is WindowState.PAUSED


def test_screen_windows_lists_the_positions_of_a_screen() -> None:
    hall = Hall()
    assert [w.id for w in hall.engine.screen_windows("S5")] == ["W5A", "W5B"]
    assert [w.id for w in hall.engine.screen_windows("W1")] == ["W1"]
    assert hall.engine.screen_windows("S9") == []


# --------------------------------------------------------------- attendance


def test_a_window_is_not_late_before_the_login_grace_has_passed() -> None:
    hall = Hall()
    assert hall.engine.anomalies("W1", at(9, 9, 59)) == []
    assert hall.do("check_clock") == []


def test_a_window_nobody_logged_in_to_ten_minutes_after_opening_is_late() -> None:
    hall = Hall(logged_in=("W1",))
    assert hall.engine.anomalies("W2", at(9, 10)) == [Anomaly.LATE_LOGIN]
    assert hall.engine.anomalies("W1", at(9, 10)) == []


def test_check_clock_raises_a_late_login_once_per_window() -> None:
    hall = Hall(logged_in=("W1",))
    hall.clock.now = at(9, 10)
    events = hall.do("check_clock")
    assert anomaly_events(events) == {
        ("window.anomaly_started", window_id, "late_login") for window_id in ALL_WINDOWS[1:]
    }
    assert hall.engine.window("W2").anomalies == {Anomaly.LATE_LOGIN: at(9, 10)}
    hall.clock.tick()
    assert hall.do("check_clock") == []


def test_a_late_login_ends_with_the_login_itself() -> None:
    hall = Hall()
    hall.clock.now = at(9, 10)
    hall.do("check_clock")
    hall.clock.tick(5)
    events = hall.do("login", "W2", "wang")
    assert anomaly_events(events) == {("window.anomaly_ended", "W2", "late_login")}
    assert hall.engine.window("W2").anomalies == {}
    assert anomaly_events(hall.do("check_clock")) == set()


def test_staff_logged_out_and_not_back_within_the_grace_are_absent() -> None:
    hall = Hall(logged_in=("W1",))
    hall.clock.now = at(9, 20)
    hall.do("logout", "W1")
    assert hall.engine.anomalies("W1", at(9, 29, 59)) == []
    assert hall.engine.anomalies("W1", at(9, 30)) == [Anomaly.ABSENT]


def test_an_absence_ends_when_the_staff_come_back() -> None:
    hall = Hall(logged_in=("W1",))
    hall.clock.now = at(9, 20)
    hall.do("logout", "W1")
    hall.clock.now = at(9, 35)
    assert anomaly_events(hall.do("check_clock")) >= {("window.anomaly_started", "W1", "absent")}
    hall.clock.tick()
    events = hall.do("login", "W1", "staff-W1")
    assert anomaly_events(events) == {("window.anomaly_ended", "W1", "absent")}


def test_a_pause_longer_than_its_reasons_limit_is_overlong() -> None:
    hall = Hall(logged_in=("W1",))
    hall.do("pause", "W1", "break")  # 15 minutes allowed
    assert hall.engine.anomalies("W1", at(9, 15)) == []
    assert hall.engine.anomalies("W1", at(9, 15, 1)) == [Anomaly.OVERLONG_PAUSE]
    hall.clock.now = at(9, 16)
    assert anomaly_events(hall.do("check_clock")) >= {
        ("window.anomaly_started", "W1", "overlong_pause")
    }


def test_the_pause_limit_depends_on_the_reason() -> None:
    hall = Hall(logged_in=("W1",))
    hall.do("pause", "W1", "lunch")  # 60 minutes allowed
    assert hall.engine.anomalies("W1", at(9, 30)) == []
    assert hall.engine.anomalies("W1", at(10, 1)) == [Anomaly.OVERLONG_PAUSE]


@pytest.mark.parametrize(
    "moment",
    [
        pytest.param(at(8, 30), id="before-opening"),
        pytest.param(at(12, 30), id="lunch-break"),
        pytest.param(at(17, 30), id="after-closing"),
        pytest.param(datetime(2026, 11, 28, 10, 0, tzinfo=OPENING.tzinfo), id="saturday"),
    ],
)
def test_no_late_login_or_absence_outside_working_hours(moment: datetime) -> None:
    hall = Hall(logged_in=("W1",))
    hall.do("logout", "W1")
    for window_id in ALL_WINDOWS:
        assert hall.engine.anomalies(window_id, moment) == []
    assert hall.engine.check_clock(now=moment) == []


def test_the_afternoon_opening_has_its_own_login_grace() -> None:
    hall = Hall()
    assert hall.engine.anomalies("W1", at(13, 39)) == []
    assert hall.engine.anomalies("W1", at(13, 40)) == [Anomaly.LATE_LOGIN]


def test_a_pause_running_into_the_lunch_closure_is_no_anomaly_outside_working_hours() -> None:
    hall = Hall(logged_in=("W1",))
    hall.clock.now = at(11, 50)
    hall.do("pause", "W1", "break")
    assert hall.engine.anomalies("W1", at(12, 30)) == []


def test_a_closed_window_has_no_attendance_anomalies() -> None:
    hall = Hall(logged_in=("W1",))
    hall.do("close_window", "W1")
    hall.do("close_window", "W2")
    for window_id in ("W1", "W2"):
        assert hall.engine.anomalies(window_id, at(10)) == []
    events = hall.engine.check_clock(now=at(10))
    assert {w for (_, w, _) in anomaly_events(events)} == {"W3", "W4", "W5A", "W5B"}


def test_a_window_with_its_own_hours_is_judged_by_them() -> None:
    base = small_layout()
    afternoon = Hours(((time(13, 30), time(17, 0)),))
    windows = {**base.windows, "W3": replace(base.windows["W3"], hours=afternoon)}
    hall = Hall(small_layout(windows=windows))
    assert hall.engine.anomalies("W3", at(10)) == []
    assert hall.engine.anomalies("W1", at(10)) == [Anomaly.LATE_LOGIN]
    assert hall.engine.anomalies("W3", at(13, 40)) == [Anomaly.LATE_LOGIN]


def test_start_day_ends_the_anomalies_still_open() -> None:
    hall = Hall(logged_in=("W1",))
    hall.clock.now = at(9, 10)
    hall.do("check_clock")
    hall.clock.now = OPENING + timedelta(days=1, hours=-1)
    events = hall.do("start_day", (OPENING + timedelta(days=1)).date())
    ended = {(w, k) for (t, w, k) in anomaly_events(events) if t == "window.anomaly_ended"}
    assert ended == {(window_id, "late_login") for window_id in ALL_WINDOWS[1:]}
    assert all(w.anomalies == {} for w in hall.engine.windows())


# ------------------------------------------------------------- services live


def test_set_window_services_changes_what_the_window_calls_live() -> None:
    hall = Hall(logged_in=("W1", "W3", "W5A"))
    hall.take("tax")
    hall.take("fund")
    hall.clock.tick()
    events = hall.do("set_window_services", "W3", {"fund": 1})
    changed = only(events, WindowServicesChanged)
    assert (changed.window_id, changed.services) == ("W3", (("fund", 1),))
    assert hall.engine.window("W3").services == {"fund": 1}
    assert [t.number for t in hall.engine.waiting_list("W3")] == ["D001"]
    assert hall.number(hall.call("W3")) == "D001"


def test_a_window_given_a_new_service_makes_that_service_ticketable() -> None:
    hall = Hall(logged_in=("W3",))
    assert refused(hall, "issue", "fund", Source.WALK_IN) is Reason.NO_OPEN_WINDOW
    hall.do("set_window_services", "W3", {"tax": 1, "fund": 1})
    assert hall.engine.open_windows("fund") == 1
    assert hall.number(hall.take("fund")) == "D001"


def test_a_window_relieved_of_a_service_no_longer_opens_it() -> None:
    hall = Hall(logged_in=("W1", "W3"))
    hall.do("set_window_services", "W3", {"fund": 1})
    assert hall.engine.open_windows("tax") == 1
    hall.do("logout", "W1")
    assert refused(hall, "issue", "tax", Source.WALK_IN) is Reason.NO_OPEN_WINDOW


@pytest.mark.parametrize(
    ("services", "reason"),
    [
        pytest.param({}, Reason.BAD_REQUEST, id="no-service"),
        pytest.param({"passport": 1}, Reason.UNKNOWN_SERVICE, id="unknown-service"),
        pytest.param({"tax": 0}, Reason.BAD_REQUEST, id="weight-zero"),
        pytest.param({"tax": 1.5}, Reason.BAD_REQUEST, id="weight-not-int"),
        pytest.param({"tax": True}, Reason.BAD_REQUEST, id="weight-bool"),
    ],
)
def test_set_window_services_refuses_a_bad_service_list(
    services: dict[str, Any], reason: Reason
) -> None:
    hall = Hall(logged_in=("W3",))
    assert refused(hall, "set_window_services", "W3", services) is reason


# ------------------------------------------------- attendance judged at once


def test_an_overlong_pause_ends_the_moment_the_window_resumes() -> None:
    hall = Hall(logged_in=("W1",))
    hall.do("pause", "W1", "break")
    hall.clock.tick(20)
    hall.do("check_clock")
    events = hall.do("resume", "W1")
    assert anomaly_events(events) == {("window.anomaly_ended", "W1", "overlong_pause")}
    assert hall.engine.window("W1").anomalies == {}


# ------------------------------------------------ closing strands no ticket


def test_closing_a_window_sends_its_named_and_held_tickets_back_to_their_queues() -> None:
    hall = Hall(logged_in=("W1", "W3"))
    sent = hall.take("tax")
    held = hall.take("tax")
    hall.call("W1")
    hall.do("transfer", "W1", to_window="W3")
    hall.do("call_ticket", "W3", held)
    hall.do("hold", "W3")
    hall.do("close_window", "W3")
    for ticket_id in (sent, held):
        ticket = hall.engine.ticket(ticket_id)
        assert (ticket.status, ticket.target_window) == (Status.WAITING, None)
    assert [t.id for t in hall.engine.waiting_list("W1")] == [sent, held]


def test_a_transfer_to_a_closed_window_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("tax")
    hall.call("W1")
    hall.do("close_window", "W3")
    assert refused(hall, "transfer", "W1", to_window="W3") is Reason.WINDOW_CLOSED


def test_closing_a_window_leaves_a_ticket_sent_to_it_in_one_queue_only() -> None:
    hall = Hall(logged_in=("W1", "W5A"))
    sent = hall.take("biz")
    hall.call("W1")
    hall.do("transfer", "W1", to_service="fund", to_window="W5A")
    hall.do("close_window", "W5A")
    assert hall.engine.window("W5A").own.ticket_ids() == []
    assert hall.engine.snapshot()["queues"]["fund"][0] == [sent]
