"""Events are the engine's whole truth: they survive JSON and rebuild the hall."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from queueing import (
    EVENT_TYPES,
    CodecError,
    Engine,
    Event,
    Source,
    StrategySpec,
    event_from_dict,
    event_to_dict,
)
from tests.engine_kit import Hall


def a_day_with_every_kind_of_event() -> Hall:
    hall = Hall(logged_in=("W1", "W2", "W3", "W4", "W5A"))
    hall.do("set_strategy", StrategySpec.of("priority_groups_first", "weighted"), scope="all")
    hall.do("set_window_services", "W3", {"tax": 2, "biz": 1})
    hall.do("set_service_terms", "fund", [["09:00", "17:00"]], 40)
    hall.take("biz", Source.ID_CARD, citizen_ref="cit-1")
    hall.take("tax", Source.PRIORITY, priority_group="elderly")
    hall.take("startup", Source.MOBILE)
    slot = hall.clock.now + timedelta(minutes=5)
    hall.take("fund", Source.APPOINTMENT, appointment_slot=slot)
    hall.take("biz", Source.PHONE)
    hall.call("W1")
    hall.do("recall", "W1")
    hall.do("start", "W1")
    hall.do("transfer", "W1", to_service="tax", to_window="W3")
    hall.call("W3")
    hall.do("hold", "W3")
    held = hall.engine.window("W3").held
    hall.do("release", "W3", next(iter(held)))
    hall.call("W3")
    hall.clock.tick(8)
    hall.do("finish", "W3")
    hall.call("W2")
    hall.do("skip", "W2")
    hall.call("W2")
    hall.do("skip", "W2")
    while hall.engine.waiting_list("W2"):
        hall.call("W2")
        hall.clock.tick(6)
        hall.do("finish", "W2")
    hall.call("W5A")
    hall.do("finish", "W5A")
    hall.do("pause", "W4", "break", message="稍候")
    hall.clock.tick(20)
    hall.do("check_clock")
    hall.do("resume", "W4")
    hall.do("check_clock")
    hall.do("close_window", "W4")
    hall.do("open_window", "W4")
    hall.do("cancel", hall.take("biz"))
    hall.take("tax")
    hall.do("start_day", hall.clock.now.date() + timedelta(days=1))
    return hall


def round_trip(events: list[Event]) -> list[Event]:
    text = json.dumps([event_to_dict(item) for item in events], ensure_ascii=False)
    return [event_from_dict(data) for data in json.loads(text)]


def test_the_scripted_day_produces_every_event_type() -> None:
    produced = {item.type for item in a_day_with_every_kind_of_event().log}
    engine_types = {n for n, cls in EVENT_TYPES.items() if cls.__module__ == "queueing.events"}
    assert produced == engine_types


def test_every_event_survives_a_json_round_trip_unchanged() -> None:
    log = a_day_with_every_kind_of_event().log
    assert round_trip(log) == log


def test_replaying_the_log_from_empty_rebuilds_the_same_state() -> None:
    hall = a_day_with_every_kind_of_event()
    replayed = Engine.replay(hall.layout, round_trip(hall.log))
    assert replayed.snapshot() == hall.engine.snapshot()


def test_the_days_events_from_its_start_rebuild_what_outlives_the_day() -> None:
    hall = Hall(logged_in=("W1", "W2"))
    hall.do("close_window", "W4")
    hall.do("set_window_services", "W3", {"tax": 3, "fund": 1})
    hall.do("set_strategy", StrategySpec.of("weighted"), scope="window", target="W2")
    hall.take("biz")
    hall.call("W1")
    hall.clock.tick(25)
    hall.do("finish", "W1")
    hall.clock.now += timedelta(days=1)
    hall.do("start_day", hall.clock.now.date())
    hall.do("login", "W1", "staff-W1")
    hall.take("tax")
    day_start = max(i for i, item in enumerate(hall.log) if item.type == "day.started")
    restored = Engine.replay(hall.layout, round_trip(hall.log[day_start:]))
    assert restored.snapshot() == hall.engine.snapshot()
    assert restored.window("W4").closed
    assert restored.average_service_minutes("biz") > 10.0


def test_replaying_half_a_day_and_going_on_gives_the_same_answers() -> None:
    hall = Hall(logged_in=("W1", "W2"))
    for _ in range(6):
        hall.take("biz")
    hall.call("W1")
    twin = Engine.replay(hall.layout, round_trip(hall.log))
    now = hall.clock.tick()
    assert twin.call_next("W2", now=now) == hall.engine.call_next("W2", now=now)
    assert twin.snapshot() == hall.engine.snapshot()


def test_an_unknown_event_type_is_refused_by_name() -> None:
    with pytest.raises(CodecError, match=r"unknown event type 'ticket\.teleported'"):
        event_from_dict({"type": "ticket.teleported", "at": "2026-11-24T09:00:00+08:00"})


def test_a_missing_field_is_named() -> None:
    data = event_to_dict(Hall().log[0])
    del data["day"]
    with pytest.raises(CodecError, match=r"day.started: missing field 'day'"):
        event_from_dict(data)


def test_a_field_of_the_wrong_type_is_named() -> None:
    hall = Hall(logged_in=("W1",))
    hall.take("biz")
    data = event_to_dict(hall.log[-1])
    data["ordinal"] = "seven"
    with pytest.raises(CodecError, match=r"ticket.issued.ordinal"):
        event_from_dict(data)
