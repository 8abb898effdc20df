"""Managers change a service's opening hours and daily quota while the hall runs."""

from __future__ import annotations

import json
from datetime import time, timedelta

import pytest

from queueing import Engine, Reason, event_from_dict, event_to_dict
from queueing.events import DayStarted, ServiceTermsChanged
from tests.engine_kit import OPENING, Hall, only, refused


def test_changing_terms_reports_an_event_with_hours_and_quota() -> None:
    hall = Hall()
    event = only(
        hall.do("set_service_terms", "biz", [["13:30", "17:00"], ["09:00", "12:00"]], 5),
        ServiceTermsChanged,
    )
    assert (event.type, event.service_id, event.hours, event.daily_quota) == (
        "service.terms_changed", "biz", (("09:00", "12:00"), ("13:30", "17:00")), 5)
    service = hall.engine.layout.services["biz"]
    assert service.hours.intervals == ((time(9), time(12)), (time(13, 30), time(17)))
    assert service.daily_quota == 5


def test_new_hours_refuse_tickets_outside_them_at_once() -> None:
    hall = Hall(logged_in=("W1",))
    hall.do("set_service_terms", "biz", [["10:00", "12:00"]], None)
    assert refused(hall, "issue", "biz", "walk_in") is Reason.OUTSIDE_HOURS
    hall.clock.now = OPENING.replace(hour=10)
    hall.take("biz")
    assert hall.engine.issued_today("biz") == 1


def test_a_new_quota_refuses_once_used_up_and_none_lifts_it() -> None:
    hall = Hall(logged_in=("W4",))
    hall.take("house")
    hall.do("set_service_terms", "house", [["09:00", "17:00"]], 1)
    assert refused(hall, "issue", "house", "walk_in") is Reason.QUOTA_EXHAUSTED
    hall.do("set_service_terms", "house", [["09:00", "17:00"]], None)
    hall.take("house")
    assert hall.engine.layout.services["house"].daily_quota is None


def test_a_quota_of_zero_stops_a_service() -> None:
    hall = Hall(logged_in=("W1",))
    hall.do("set_service_terms", "tax", [["00:00", "24:00"]], 0)
    assert refused(hall, "issue", "tax", "walk_in") is Reason.QUOTA_EXHAUSTED


def test_the_configured_weekdays_stay() -> None:
    hall = Hall()
    hall.do("set_service_terms", "morning", [["08:00", "11:00"]], 9)
    assert hall.engine.layout.services["morning"].hours.weekdays == frozenset(range(5))
    assert hall.engine.layout.services["biz"].hours.weekdays == frozenset(range(7))


def test_24_00_ends_an_interval_at_midnight() -> None:
    hall = Hall(logged_in=("W1",))
    hall.do("set_service_terms", "biz", [["08:00", "24:00"]], None)
    hall.clock.now = OPENING.replace(hour=23, minute=58, second=30)  # take() ticks a minute
    hall.take("biz")


@pytest.mark.parametrize("hours", [
    [],
    [["09:00"]],
    [["9:00", "12:00"]],
    [["09:00", "25:00"]],
    [["12:00", "09:00"]],
    [["09:00", "09:00"]],
    [["24:00", "24:00"]],
    [["09:00", "12:00"], ["11:00", "13:00"]],
    [["nine", "ten"]],
    [[9, 12]],
])
def test_malformed_or_overlapping_hours_are_refused(hours: list[list[object]]) -> None:
    assert refused(Hall(), "set_service_terms", "biz", hours, None) is Reason.BAD_REQUEST


@pytest.mark.parametrize("quota", [-1, True, 2.5, "3"])
def test_a_quota_must_be_a_whole_number_not_below_zero(quota: object) -> None:
    assert refused(Hall(), "set_service_terms", "biz", [["09:00", "12:00"]], quota) \
        is Reason.BAD_REQUEST


def test_an_unknown_service_is_refused() -> None:
    assert refused(Hall(), "set_service_terms", "visa", [["09:00", "12:00"]], 1) \
        is Reason.UNKNOWN_SERVICE


def test_the_estimate_and_the_service_follow_the_new_terms() -> None:
    hall = Hall(logged_in=("W4",))
    hall.take("house")
    before = hall.engine.service_estimate("house")
    hall.do("set_service_terms", "house", [["09:00", "12:00"]], 10)
    assert hall.engine.service_estimate("house") == before
    for _ in range(9):
        hall.take("house")
    assert refused(hall, "issue", "house", "walk_in") is Reason.QUOTA_EXHAUSTED


def test_the_change_survives_json_and_replay() -> None:
    hall = Hall(logged_in=("W1",))
    hall.do("set_service_terms", "biz", [["09:00", "10:00"]], 2)
    text = json.dumps([event_to_dict(item) for item in hall.log], ensure_ascii=False)
    log = [event_from_dict(data) for data in json.loads(text)]
    assert log == hall.log
    replayed = Engine.replay(hall.layout, log)
    assert replayed.snapshot() == hall.engine.snapshot()
    assert replayed.layout.services["biz"].daily_quota == 2


def test_the_change_outlives_the_day_through_its_checkpoint() -> None:
    hall = Hall()
    hall.do("set_service_terms", "biz", [["09:00", "10:00"]], 2)
    hall.clock.now += timedelta(days=1)
    started = only(hall.do("start_day", hall.clock.now.date()), DayStarted)
    assert started.service_terms == (("biz", (("09:00", "10:00"),), 2),)
    restored = Engine.replay(hall.layout, [event_from_dict(event_to_dict(started))])
    assert restored.layout.services["biz"].daily_quota == 2
    assert restored.layout.services["biz"].hours.intervals == ((time(9), time(10)),)
    assert restored.snapshot() == hall.engine.snapshot()


def test_a_checkpoint_stored_before_terms_existed_still_reads() -> None:
    data = event_to_dict(Hall().log[0])
    del data["service_terms"]
    assert event_from_dict(data) == Hall().log[0]


def test_the_configured_layout_is_left_untouched() -> None:
    hall = Hall()
    hall.do("set_service_terms", "house", [["09:00", "10:00"]], 1)
    assert hall.layout.services["house"].daily_quota == 3
