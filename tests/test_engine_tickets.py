"""Issuing tickets: numbering, what a ticket records, the new day, and refusals."""

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from queueing import Engine, Package, Reason, Rejected, Source, Status, TimeNode, WindowState
from queueing.events import (
    DayStarted,
    Event,
    TicketExpired,
    TicketIssued,
    WindowLoggedOut,
)
from tests.engine_kit import OPENING, Hall, refused, small_layout

NEXT_DAY = date(2026, 11, 25)

def numbers(hall: Hall, ticket_ids: list[str]) -> list[str]:
    return [hall.number(ticket_id) for ticket_id in ticket_ids]


def issued(events: list[Event]) -> TicketIssued:
    assert [e.type for e in events] == ["ticket.issued"]
    event = events[0]
    assert isinstance(event, TicketIssued)
    return event


def next_day(hall: Hall) -> list[Event]:
    hall.clock.now = OPENING + timedelta(days=1)
    return hall.do("start_day", NEXT_DAY)


# ------------------------------------------------------------------ numbering


def test_tickets_of_a_service_are_numbered_from_one_with_the_services_prefix() -> None:
    hall = Hall(logged_in=("W1",))
    assert numbers(hall, [hall.take("biz"), hall.take("biz"), hall.take("biz")]) == [
        "A001",
        "A002",
        "A003",
    ]


def test_each_prefix_has_its_own_numbering() -> None:
    hall = Hall(logged_in=("W1",))
    taken = [hall.take("biz"), hall.take("tax"), hall.take("biz"), hall.take("tax")]
    assert numbers(hall, taken) == ["A001", "B001", "A002", "B002"]


def test_a_package_ticket_has_the_packages_prefix_and_numbering() -> None:
    hall = Hall(logged_in=("W1",))
    taken = [hall.take("biz"), hall.take("startup"), hall.take("startup"), hall.take("biz")]
    assert numbers(hall, taken) == ["A001", "K001", "K002", "A002"]
    package = hall.engine.ticket(taken[1])
    assert package.prefix == "K"
    assert package.requested == "startup"
    assert package.services == ("biz", "tax")
    assert package.service == "biz"


def test_services_sharing_a_prefix_share_one_numbering() -> None:
    base = small_layout()
    services = dict(base.services)
    services["tax"] = replace(services["tax"], prefix="A")
    hall = Hall(small_layout(services=services), logged_in=("W1",))
    taken = [hall.take("biz"), hall.take("tax"), hall.take("biz")]
    assert numbers(hall, taken) == ["A001", "A002", "A003"]
    assert [hall.engine.ticket(t).service for t in taken] == ["biz", "tax", "biz"]
    assert len(set(taken)) == 3


def test_the_ticket_id_is_the_day_and_the_number() -> None:
    hall = Hall(logged_in=("W1",))
    assert hall.take("biz") == "20261124-A001"
    assert hall.take("tax") == "20261124-B001"


def test_the_number_width_comes_from_the_layout() -> None:
    hall = Hall(small_layout(number_width=4), logged_in=("W1",))
    assert hall.number(hall.take("biz")) == "A0001"


def test_numbers_are_never_reused_after_a_cancel() -> None:
    hall = Hall(logged_in=("W1",))
    first, second = hall.take("biz"), hall.take("biz")
    hall.do("cancel", second)
    hall.do("cancel", first)
    assert hall.number(hall.take("biz")) == "A003"


def test_numbers_are_never_reused_after_a_ticket_ends() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.call("W1")
    hall.do("finish", "W1")
    assert hall.number(hall.take("biz")) == "A002"


def test_a_refused_ticket_does_not_use_up_a_number() -> None:
    hall = Hall(logged_in=("W1",))
    refused(hall, "issue", "biz", Source.APPOINTMENT)
    assert hall.number(hall.take("biz")) == "A001"


def test_issue_ordinals_grow_across_prefixes() -> None:
    hall = Hall(logged_in=("W1",))
    taken = [hall.take("biz"), hall.take("tax"), hall.take("startup")]
    assert [hall.engine.ticket(t).ordinal for t in taken] == [1, 2, 3]


def test_numbering_restarts_on_the_next_day() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    hall.take("biz")
    hall.take("tax")
    next_day(hall)
    hall.do("login", "W1", "staff-W1")
    assert numbers(hall, [hall.take("tax"), hall.take("biz")]) == ["B001", "A001"]


def test_ticket_ids_stay_unique_across_days() -> None:
    hall = Hall(logged_in=("W1",))
    yesterday = [hall.take("biz"), hall.take("biz")]
    next_day(hall)
    hall.do("login", "W1", "staff-W1")
    today = [hall.take("biz"), hall.take("biz")]
    assert numbers(hall, today) == ["A001", "A002"]
    assert today == ["20261125-A001", "20261125-A002"]
    assert not set(yesterday) & set(today)


def test_starting_the_running_day_again_is_refused_so_no_number_is_issued_twice() -> None:
    hall = Hall(logged_in=("W1",))
    first = hall.take("biz")
    before = hall.engine.snapshot()
    with pytest.raises(Rejected) as refused:
        hall.do("start_day", OPENING.date())
    assert refused.value.reason is Reason.DAY_ALREADY_STARTED
    assert hall.engine.snapshot() == before
    assert hall.take("biz") != first


def test_an_earlier_day_cannot_be_started() -> None:
    hall = Hall()
    with pytest.raises(Rejected) as refused:
        hall.do("start_day", OPENING.date().replace(day=1))
    assert refused.value.reason is Reason.DAY_ALREADY_STARTED


# ------------------------------------------------------------ the next day


def test_start_day_expires_yesterdays_open_tickets() -> None:
    hall = Hall(logged_in=("W1", "W3"))
    finished = hall.take("biz")
    hall.call("W1")
    hall.do("finish", "W1")
    cancelled = hall.take("biz")
    hall.do("cancel", cancelled)
    held = hall.take("biz")
    hall.call("W1")
    hall.do("hold", "W1")
    called = hall.take("tax")
    hall.call("W3")
    waiting = hall.take("biz")
    waiting_tax = hall.take("tax")

    events = next_day(hall)

    expired = {e.ticket_id for e in events if isinstance(e, TicketExpired)}
    assert expired == {held, called, waiting, waiting_tax}
    assert finished not in expired
    assert cancelled not in expired
    day_events = [e for e in events if isinstance(e, DayStarted)]
    assert [e.day for e in day_events] == [NEXT_DAY]
    assert hall.engine.waiting_count("biz") == 0
    assert hall.engine.waiting_count("tax") == 0
    assert hall.engine.window("W1").held == {}
    assert hall.engine.current_ticket("W3") is None


def test_yesterdays_tickets_are_unknown_after_start_day() -> None:
    hall = Hall(logged_in=("W1",))
    yesterday = hall.take("biz")
    next_day(hall)
    assert list(hall.engine.tickets()) == []
    with pytest.raises(Rejected) as caught:
        hall.engine.ticket(yesterday)
    assert caught.value.reason is Reason.UNKNOWN_TICKET


def test_start_day_logs_every_staff_member_out() -> None:
    hall = Hall(logged_in=("W1", "W3", "W5A"))
    hall.do("pause", "W3", "break")
    events = next_day(hall)
    logged_out = {(e.window_id, e.staff_id) for e in events if isinstance(e, WindowLoggedOut)}
    assert logged_out == {("W1", "staff-W1"), ("W3", "staff-W3"), ("W5A", "staff-W5A")}
    for window_id in ("W1", "W3", "W5A"):
        assert hall.engine.window_state(window_id) is WindowState.NOT_LOGGED_IN
        assert hall.engine.window(window_id).staff is None
    assert hall.engine.window("W3").pause is None
    hall.do("login", "W3", "staff-W1")  # nobody is still "logged in elsewhere"


def test_start_day_sets_the_business_day() -> None:
    hall = Hall()
    assert hall.engine.day == OPENING.date()
    next_day(hall)
    assert hall.engine.day == NEXT_DAY


def test_the_quota_restarts_on_the_next_day() -> None:
    hall = Hall(logged_in=("W4",))
    for _ in range(3):
        hall.take("house")
    next_day(hall)
    hall.do("login", "W4", "staff-W4")
    assert hall.number(hall.take("house")) == "C001"


# ------------------------------------------------------------ what is recorded


def test_a_new_ticket_waits_and_records_its_issue_time_as_first_node() -> None:
    hall = Hall(logged_in=("W1",))
    ticket_id = hall.take("biz")
    ticket = hall.engine.ticket(ticket_id)
    assert ticket.status is Status.WAITING
    assert ticket.issued_at == hall.clock.now
    assert ticket.nodes == [TimeNode("issued", hall.clock.now, None, "biz")]


def test_the_issue_event_says_what_was_issued() -> None:
    hall = Hall(logged_in=("W1",))
    hall.clock.tick()
    event = issued(hall.do("issue", "startup", Source.MOBILE, citizen_ref="c-7"))
    assert event.at == hall.clock.now
    assert event.ticket_id == "20261124-K001"
    assert event.number == "K001"
    assert event.prefix == "K"
    assert event.requested == "startup"
    assert event.services == ("biz", "tax")
    assert event.source == "mobile"
    assert event.citizen_ref == "c-7"
    assert event.priority_group is None
    assert event.appointment_slot is None


@pytest.mark.parametrize("source", [Source.WALK_IN, Source.ID_CARD, Source.PHONE, Source.MOBILE])
def test_the_source_is_recorded(source: Source) -> None:
    hall = Hall(logged_in=("W1",))
    ticket = hall.engine.ticket(hall.take("biz", source))
    assert ticket.source is source


def test_the_citizen_reference_is_recorded() -> None:
    hall = Hall(logged_in=("W1",))
    with_ref = hall.engine.ticket(hall.take("biz", Source.ID_CARD, citizen_ref="card-1234"))
    without = hall.engine.ticket(hall.take("biz"))
    assert with_ref.citizen_ref == "card-1234"
    assert without.citizen_ref is None


def test_a_priority_ticket_records_its_group() -> None:
    hall = Hall(logged_in=("W1",))
    hall.clock.tick()
    event = issued(hall.do("issue", "biz", Source.PRIORITY, priority_group="elderly"))
    ticket = hall.engine.ticket(event.ticket_id)
    assert ticket.source is Source.PRIORITY
    assert ticket.priority_group == "elderly"
    assert event.priority_group == "elderly"
    assert event.source == "priority"


def test_an_appointment_ticket_records_its_slot() -> None:
    hall = Hall(logged_in=("W1",))
    slot = OPENING.replace(hour=10, minute=30)
    hall.clock.tick()
    event = issued(hall.do("issue", "biz", Source.APPOINTMENT, appointment_slot=slot))
    ticket = hall.engine.ticket(event.ticket_id)
    assert ticket.source is Source.APPOINTMENT
    assert ticket.appointment_slot == slot
    assert event.appointment_slot == slot


# ------------------------------------------------------------------ refusals


def test_an_unknown_service_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    assert refused(hall, "issue", "passport", Source.WALK_IN) is Reason.UNKNOWN_SERVICE


def test_a_service_is_refused_from_its_closing_time() -> None:
    hall = Hall(logged_in=("W4",))
    hall.clock.now = OPENING.replace(hour=12)
    assert refused(hall, "issue", "morning", Source.WALK_IN) is Reason.OUTSIDE_HOURS


def test_a_service_is_ticketed_until_just_before_its_closing_time() -> None:
    hall = Hall(logged_in=("W4",))
    hall.clock.now = OPENING.replace(hour=11, minute=58)
    ticket_id = hall.take("morning")  # one minute later: 11:59
    assert hall.engine.ticket(ticket_id).issued_at == OPENING.replace(hour=11, minute=59)
    assert hall.number(ticket_id) == "E001"


def test_a_service_is_refused_on_a_day_it_does_not_open() -> None:
    hall = Hall()
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=OPENING.tzinfo)
    hall.clock.now = saturday
    hall.do("start_day", saturday.date())
    hall.do("login", "W4", "staff-W4")
    assert refused(hall, "issue", "morning", Source.WALK_IN) is Reason.OUTSIDE_HOURS
    assert hall.number(hall.take("house")) == "C001"  # an always-open service still issues


def test_a_package_is_refused_when_one_of_its_services_is_outside_hours() -> None:
    exit_visa = Package("exit", "出境办理", "X", ("house", "morning"))
    packages = {**small_layout().packages, "exit": exit_visa}
    hall = Hall(small_layout(packages=packages), logged_in=("W4",))
    hall.clock.now = OPENING.replace(hour=13)
    assert refused(hall, "issue", "exit", Source.WALK_IN) is Reason.OUTSIDE_HOURS


def test_the_daily_quota_allows_exactly_that_many_tickets() -> None:
    hall = Hall(logged_in=("W4",))
    taken = [hall.take("house") for _ in range(3)]
    assert numbers(hall, taken) == ["C001", "C002", "C003"]
    hall.clock.tick()
    assert refused(hall, "issue", "house", Source.WALK_IN) is Reason.QUOTA_EXHAUSTED


def test_a_service_with_nobody_logged_in_is_refused() -> None:
    hall = Hall(logged_in=("W1",))
    assert refused(hall, "issue", "house", Source.WALK_IN) is Reason.NO_OPEN_WINDOW


def test_a_service_whose_only_window_is_paused_is_refused() -> None:
    hall = Hall(logged_in=("W4",))
    hall.do("pause", "W4", "break")
    assert refused(hall, "issue", "house", Source.WALK_IN) is Reason.NO_OPEN_WINDOW


def test_a_service_is_ticketed_again_when_its_window_resumes() -> None:
    hall = Hall(logged_in=("W4",))
    hall.do("pause", "W4", "break")
    hall.do("resume", "W4")
    assert hall.number(hall.take("house")) == "C001"


def test_a_service_whose_only_window_is_closed_is_refused() -> None:
    hall = Hall(logged_in=("W4",))
    hall.do("close_window", "W4")
    assert refused(hall, "issue", "house", Source.WALK_IN) is Reason.NO_OPEN_WINDOW


def test_a_service_is_ticketed_while_one_of_its_windows_is_open() -> None:
    hall = Hall(logged_in=("W1", "W3"))
    hall.do("pause", "W1", "break")
    assert hall.number(hall.take("tax")) == "B001"


def test_a_package_is_refused_when_one_of_its_services_has_no_open_window() -> None:
    hall = Hall(logged_in=("W2",))  # W2 serves biz only; nobody serves tax
    assert refused(hall, "issue", "startup", Source.WALK_IN) is Reason.NO_OPEN_WINDOW


def test_nothing_is_issued_before_the_day_starts() -> None:
    engine = Engine(small_layout())
    with pytest.raises(Rejected) as caught:
        engine.issue("biz", Source.WALK_IN, now=OPENING)
    assert caught.value.reason is Reason.DAY_NOT_STARTED
    assert engine.snapshot() == Engine(small_layout()).snapshot()


def test_nobody_logs_in_before_the_day_starts() -> None:
    engine = Engine(small_layout())
    with pytest.raises(Rejected) as caught:
        engine.login("W1", "zhang", now=OPENING)
    assert caught.value.reason is Reason.DAY_NOT_STARTED


@pytest.mark.parametrize(
    ("source", "options"),
    [
        pytest.param(Source.APPOINTMENT, {}, id="appointment-without-slot"),
        pytest.param(
            Source.WALK_IN, {"appointment_slot": OPENING.replace(hour=10)}, id="slot-on-walk-in"
        ),
        pytest.param(
            Source.PRIORITY, {"appointment_slot": OPENING.replace(hour=10)}, id="slot-on-priority"
        ),
        pytest.param(Source.WALK_IN, {"priority_group": "elderly"}, id="group-on-walk-in"),
        pytest.param(
            Source.APPOINTMENT,
            {"appointment_slot": OPENING.replace(hour=10), "priority_group": "elderly"},
            id="group-on-appointment",
        ),
    ],
)
def test_an_inconsistent_request_is_a_bad_request(source: Source, options: dict[str, Any]) -> None:
    hall = Hall(logged_in=("W1",))
    assert refused(hall, "issue", "biz", source, **options) is Reason.BAD_REQUEST


def test_a_refused_issue_changes_nothing() -> None:
    hall = Hall(logged_in=("W4",))
    for _ in range(3):
        hall.take("house")
    before = hall.engine.snapshot()
    log_length = len(hall.log)
    with pytest.raises(Rejected):
        hall.do("issue", "house", Source.WALK_IN)
    assert hall.engine.snapshot() == before
    assert len(hall.log) == log_length
    assert hall.engine.waiting_count("house") == 3


def test_issued_today_counts_what_the_quota_counts() -> None:
    hall = Hall(logged_in=("W4",))
    for _ in range(2):
        hall.do("cancel", hall.take("house"))
    assert hall.engine.issued_today("house") == 2
