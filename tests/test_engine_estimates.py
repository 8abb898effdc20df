"""Waiting estimates (Q6): people ahead, open windows, and the running average."""

import pytest

from queueing import Estimate, Reason, Rejected
from tests.engine_kit import Hall


def serve(hall: Hall, window_id: str, minutes: float) -> None:
    """Call the next ticket, start it and finish it ``minutes`` later."""
    hall.call(window_id)
    hall.do("start", window_id)
    hall.clock.tick(minutes)
    hall.do("finish", window_id)


def ticket_estimate_reason(hall: Hall, ticket_id: str) -> Reason:
    with pytest.raises(Rejected) as caught:
        hall.engine.ticket_estimate(ticket_id)
    return caught.value.reason


# ----------------------------------------------------------- service estimate


def test_the_service_estimate_is_people_ahead_times_average_over_open_windows() -> None:
    hall = Hall(logged_in=("W1", "W3"))  # both serve tax; tax averages 6 minutes
    for _ in range(4):
        hall.take("tax")
    assert hall.engine.service_estimate("tax") == Estimate(4, 4 * 6 / 2, 2)


def test_with_nobody_waiting_the_service_estimate_is_zero_minutes() -> None:
    hall = Hall(logged_in=("W3",))
    assert hall.engine.service_estimate("tax") == Estimate(0, 0.0, 1)


def test_with_no_open_window_the_estimate_has_no_minutes() -> None:
    hall = Hall(logged_in=("W3",))
    hall.take("tax")
    hall.take("tax")
    hall.do("logout", "W3")
    assert hall.engine.service_estimate("tax") == Estimate(2, None, 0)


def test_a_service_nobody_has_logged_in_for_has_no_minutes() -> None:
    hall = Hall(logged_in=("W1",))
    assert hall.engine.service_estimate("fund") == Estimate(0, None, 0)


def test_paused_windows_do_not_count_as_open() -> None:
    hall = Hall(logged_in=("W1", "W3"))
    for _ in range(4):
        hall.take("tax")
    hall.do("pause", "W1", "break")
    assert hall.engine.service_estimate("tax") == Estimate(4, 4 * 6 / 1, 1)
    hall.do("pause", "W3", "lunch")
    assert hall.engine.service_estimate("tax") == Estimate(4, None, 0)


def test_closed_windows_do_not_count_as_open() -> None:
    hall = Hall(logged_in=("W1", "W3"))
    hall.take("tax")
    hall.do("close_window", "W1")
    assert hall.engine.service_estimate("tax").open_windows == 1


def test_a_window_busy_with_a_citizen_still_counts_as_open() -> None:
    hall = Hall(logged_in=("W1", "W3"))
    for _ in range(3):
        hall.take("tax")
    hall.call("W3")
    assert hall.engine.service_estimate("tax") == Estimate(2, 2 * 6 / 2, 2)


def test_the_service_estimate_counts_only_that_services_queue() -> None:
    hall = Hall(logged_in=("W1",))  # W1 takes biz and tax
    hall.take("biz")
    hall.take("biz")
    hall.take("tax")
    assert hall.engine.service_estimate("tax") == Estimate(1, 6.0, 1)
    assert hall.engine.service_estimate("biz") == Estimate(2, 20.0, 1)


def test_the_service_estimate_of_an_unknown_service_is_refused() -> None:
    hall = Hall()
    with pytest.raises(Rejected) as caught:
        hall.engine.service_estimate("passport")
    assert caught.value.reason is Reason.UNKNOWN_SERVICE


# ----------------------------------------------------------- running average


def test_the_running_average_starts_at_the_configured_service_time() -> None:
    hall = Hall()
    assert hall.engine.average_service_minutes("biz") == 10
    assert hall.engine.average_service_minutes("house") == 20


def test_the_running_average_moves_toward_observed_service_times() -> None:
    hall = Hall(logged_in=("W2",))
    hall.take("biz")
    hall.take("biz")
    serve(hall, "W2", 20)
    assert hall.engine.average_service_minutes("biz") == pytest.approx(0.2 * 20 + 0.8 * 10)
    serve(hall, "W2", 20)
    assert hall.engine.average_service_minutes("biz") == pytest.approx(0.2 * 20 + 0.8 * 12)


def test_quick_services_pull_the_average_down() -> None:
    hall = Hall(logged_in=("W2",))
    hall.take("biz")
    serve(hall, "W2", 5)
    assert hall.engine.average_service_minutes("biz") == pytest.approx(9.0)


def test_the_estimate_uses_the_running_average() -> None:
    hall = Hall(logged_in=("W2",))
    hall.take("biz")
    serve(hall, "W2", 20)
    hall.take("biz")
    hall.take("biz")
    estimate = hall.engine.service_estimate("biz")
    assert (estimate.people_ahead, estimate.open_windows) == (2, 1)
    assert estimate.minutes == pytest.approx(2 * 12.0)


def test_a_service_time_teaches_only_its_own_service() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    serve(hall, "W1", 20)
    assert hall.engine.average_service_minutes("tax") == 6


def test_a_package_step_teaches_the_service_of_that_step() -> None:
    hall = Hall(logged_in=("W2", "W3"))
    hall.take("startup")
    serve(hall, "W2", 20)  # the biz step
    assert hall.engine.average_service_minutes("biz") == pytest.approx(12.0)
    assert hall.engine.average_service_minutes("tax") == 6
    serve(hall, "W3", 1)  # the tax step
    assert hall.engine.average_service_minutes("tax") == pytest.approx(0.2 * 1 + 0.8 * 6)


def test_the_running_average_survives_the_next_day() -> None:
    hall = Hall(logged_in=("W2",))
    hall.take("biz")
    serve(hall, "W2", 20)
    hall.clock.tick(24 * 60)
    hall.do("start_day", hall.clock.now.date())
    assert hall.engine.average_service_minutes("biz") == pytest.approx(12.0)


def test_finish_straight_from_called_does_not_teach_a_zero_service_time() -> None:
    hall = Hall(logged_in=("W2",))
    hall.take("biz")
    hall.call("W2")
    hall.clock.tick(10)
    hall.do("finish", "W2")  # ten minutes after the call, without a start
    assert hall.engine.average_service_minutes("biz") == pytest.approx(10.0)


# ------------------------------------------------------------ ticket estimate


def test_the_ticket_estimate_gives_the_people_ahead_of_a_mid_queue_ticket() -> None:
    hall = Hall(logged_in=("W2",))
    taken = [hall.take("biz") for _ in range(5)]
    assert hall.engine.ticket_estimate(taken[2]) == Estimate(2, 2 * 10.0, 1)


def test_the_head_of_the_queue_has_nobody_ahead() -> None:
    hall = Hall(logged_in=("W1", "W2"))
    first = hall.take("biz")
    hall.take("biz")
    assert hall.engine.ticket_estimate(first) == Estimate(0, 0.0, 2)


def test_the_ticket_estimate_counts_only_tickets_of_the_same_service() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.take("biz")
    tax = hall.take("tax")
    assert hall.engine.ticket_estimate(tax) == Estimate(0, 0.0, 1)


def test_the_ticket_estimate_shrinks_as_tickets_ahead_are_called() -> None:
    hall = Hall(logged_in=("W2",))
    taken = [hall.take("biz") for _ in range(4)]
    hall.call("W2")
    assert hall.engine.ticket_estimate(taken[3]).people_ahead == 2


def test_the_ticket_estimate_of_a_skipped_ticket_counts_those_now_ahead() -> None:
    hall = Hall(logged_in=("W2",))
    taken = [hall.take("biz") for _ in range(4)]
    hall.call("W2")
    hall.do("skip", "W2")
    assert hall.engine.ticket_estimate(taken[0]).people_ahead == 2


def test_a_ticket_sent_to_a_window_counts_the_people_ahead_at_that_window() -> None:
    hall = Hall(logged_in=("W1", "W2", "W3"))
    first = hall.take("tax")
    hall.take("tax")
    second = hall.take("tax")
    hall.clock.tick()
    for ticket_id in (first, second):
        hall.do("call_ticket", "W1", ticket_id)
        hall.do("transfer", "W1", to_window="W3")
    assert hall.engine.ticket_estimate(second) == Estimate(1, 6.0, 1)


def test_a_ticket_sent_to_a_window_nobody_staffs_has_no_minutes() -> None:
    hall = Hall(logged_in=("W1", "W3"))
    sent = hall.take("tax")
    hall.call("W1")
    hall.do("transfer", "W1", to_window="W3")
    hall.do("logout", "W3")
    assert hall.engine.ticket_estimate(sent) == Estimate(0, None, 0)


def test_the_ticket_estimate_is_refused_for_a_called_ticket() -> None:
    hall = Hall(logged_in=("W1",))
    called = hall.take("biz")
    hall.call("W1")
    assert ticket_estimate_reason(hall, called) is Reason.TICKET_NOT_WAITING


def test_the_ticket_estimate_is_refused_for_a_held_ticket() -> None:
    hall = Hall(logged_in=("W1",))
    held = hall.take("biz")
    hall.call("W1")
    hall.do("hold", "W1")
    assert ticket_estimate_reason(hall, held) is Reason.TICKET_NOT_WAITING


def test_the_ticket_estimate_is_refused_for_a_finished_ticket() -> None:
    hall = Hall(logged_in=("W1",))
    done = hall.take("biz")
    hall.call("W1")
    hall.do("finish", "W1")
    assert ticket_estimate_reason(hall, done) is Reason.TICKET_NOT_WAITING


def test_the_ticket_estimate_of_an_unknown_ticket_is_refused() -> None:
    hall = Hall()
    assert ticket_estimate_reason(hall, "20261124-A001") is Reason.UNKNOWN_TICKET


def test_a_package_is_estimated_by_its_first_service() -> None:
    hall = Hall(logged_in=("W2",))
    hall.take("biz")
    assert hall.engine.service_estimate("startup") == hall.engine.service_estimate("biz")
