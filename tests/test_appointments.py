"""Appointments (Q1): slots with capacity, opening rules and blackout days; book,
change and cancel; check-in by ID card; the late and missed policy. Over real
HTTP and a real database, on a clock that moves only when told."""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hall.appointment_config import AppointmentConfig, AppointmentsTable, build
from hall.config import ConfigError, HallConfig, load_hall_config, parse_hall_config
from hall.http import build_app
from hall.server import HallServer
from tests.engine_kit import OPENING
from tests.hall_kit import ManualClock, serving
from tests.test_api_hall import BACKEND, HALL, KIOSK, bearer, open_window

Client = TestClient[Any, Any]
Hall = tuple[HallServer, Client, ManualClock]

ZHANG_SAN = {"name": "张三", "id_number": "11010519491231002X", "phone": "13812345678"}
BLACKOUT = date(2026, 11, 26)
"""A Thursday; OPENING is Tuesday 2026-11-24 09:00."""

TABLE: dict[str, Any] = {
    "blackout_days": [BLACKOUT],
    "late_grace_minutes": 15,
    "beyond_grace": "walk_in",
    "bookings_per_citizen": 3,
    "services": [{
        "service": "biz", "slot_minutes": 30, "capacity": 2, "days_ahead": 7,
        "cutoff_minutes": 30,
        "opening": {day: ["09:00-12:00", "13:30-17:00"] for day in
                    ("mon", "tue", "wed", "thu", "fri")},
    }],
}


def appointments(**changes: Any) -> AppointmentConfig:
    return build(AppointmentsTable.model_validate({**TABLE, **changes}), HALL.layout)


BOOKING_HALL = replace(HALL, appointments=appointments())


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    return OPENING.replace(hour=hour, minute=minute) + timedelta(days=days)


async def hall_with(pool: asyncpg.Pool, config: HallConfig) -> AsyncIterator[Hall]:
    clock = ManualClock()
    server = await serving(pool, clock, config)
    async with TestClient(TestServer(build_app(server))) as client:
        yield server, client, clock
    await server.stop()


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[Hall]:
    async for each in hall_with(pool, BOOKING_HALL):
        yield each


async def book(client: Client, start: datetime, citizen: dict[str, str] | None = None,
               service: str = "biz") -> Any:
    return await client.post("/api/v1/bookings", json={
        "service": service, "slot_start": start.isoformat(), "citizen": citizen or ZHANG_SAN,
        "channel": "mobile",
    })


async def booked(client: Client, start: datetime,
                 citizen: dict[str, str] | None = None) -> dict[str, Any]:
    response = await book(client, start, citizen)
    body: dict[str, Any] = await response.json()
    assert response.status == 201, body
    return body


def person(n: int) -> dict[str, str]:
    return {"name": f"市民{n}", "phone": f"139000000{n:02d}"}


async def slots(client: Client, day: date, to: date | None = None) -> dict[str, Any]:
    query = f"service=biz&from={day.isoformat()}" + (f"&to={to.isoformat()}" if to else "")
    response = await client.get(f"/api/v1/appointment-slots?{query}")
    body: dict[str, Any] = await response.json()
    assert response.status == 200, body
    return body


def slot_at(listing: dict[str, Any], start: datetime) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        s for s in listing["slots"] if datetime.fromisoformat(s["start"]) == start]
    assert len(found) == 1, found
    return found[0]


async def check_in_by_card(client: Client, id_number: str = ZHANG_SAN["id_number"]) -> Any:
    return await client.post("/api/v1/tickets", headers=bearer(KIOSK), json={
        "source": "appointment", "identity": {"id_number": id_number}})


async def problem(response: Any) -> tuple[int, str]:
    return response.status, (await response.json())["code"]


# ---------------------------------------------------------------- configuration

MINIMAL = """\
[hall]
id = "test-hall"
name = "测试大厅"
working_hours = ["09:00-12:00", "13:30-17:30"]

[[areas]]
id = "f1-a"
name = "一楼A区"
floor = 1

[[services]]
id = "tax-01"
name = "纳税申报"
category = "税务服务"
prefix = "J"

[[windows]]
id = "w01"
name = "1号窗口"
area = "f1-a"
services = ["tax-01"]
"""


def parse(extra: str) -> HallConfig:
    return parse_hall_config(tomllib.loads(MINIMAL + extra), "hall.toml")


def config_problems(extra: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(extra)
    return str(caught.value).splitlines()


def test_the_appointments_table_gives_slots_opening_rules_and_blackout_days() -> None:
    config = parse(
        '[appointments]\nblackout_days = [2026-10-01, "2026-10-02"]\nbeyond_grace = "refuse"\n'
        "[appointments.mobile]\ntickets_per_phone_per_day = 2\n"
        '[[appointments.services]]\nservice = "tax-01"\ncapacity = 5\nslot_minutes = 20\n'
        '[appointments.services.opening]\nsat = ["09:00-11:00"]\n'
    ).appointments
    rule = config.services["tax-01"]
    assert (rule.capacity, rule.slot_minutes, dict(rule.opening)) == (
        5, 20, {5: ((time(9), time(11)),)})
    assert config.blackout_days == {date(2026, 10, 1), date(2026, 10, 2)}
    assert (config.beyond_grace, config.tickets_per_phone_per_day) == ("refuse", 2)


def test_a_service_without_its_own_opening_is_bookable_in_its_hours() -> None:
    config = parse('[[appointments.services]]\nservice = "tax-01"\ncapacity = 1\n').appointments
    assert sorted(config.services["tax-01"].opening) == [0, 1, 2, 3, 4]


def test_a_hall_without_the_table_books_nothing_and_keeps_the_late_policy() -> None:
    config = parse("").appointments
    assert (dict(config.services), config.late_grace) == ({}, timedelta(minutes=15))


def test_a_bookable_service_the_hall_lacks_is_named_by_its_key_path() -> None:
    assert config_problems(
        '[[appointments.services]]\nservice = "nope"\ncapacity = 1\n'
    ) == ["hall.toml: appointments.services[0].service: unknown service 'nope'"]


def test_bad_appointment_settings_are_named_by_their_key_paths() -> None:
    lines = config_problems(
        '[appointments]\nblackout_days = ["soon"]\n'
        '[[appointments.services]]\nservice = "tax-01"\ncapacity = 0\n'
        '[appointments.services.opening]\nmon = ["12:00-09:00"]\n'
    )
    assert [line.split(": ")[1] for line in lines] == [
        "appointments.blackout_days[0]",
        "appointments.services[0].capacity",
        "appointments.services[0].opening.mon",
    ]


def test_the_demo_hall_takes_appointments_for_a_few_services() -> None:
    demo = load_hall_config(Path(__file__).resolve().parent.parent / "config" / "demo-hall.toml")
    rules = demo.appointments.services
    assert {"biz-setup", "re-transfer", "exit-passport", "hf-withdraw"} <= set(rules)
    assert 5 in rules["exit-passport"].opening and 5 not in rules["re-transfer"].opening


# ---------------------------------------------------------------- slots


async def test_slots_follow_the_opening_hours_with_their_capacity(hall: Hall) -> None:
    _, client, _ = hall
    listing = await slots(client, OPENING.date())
    starts = [datetime.fromisoformat(s["start"]) for s in listing["slots"]]
    assert (len(starts), starts[0], starts[5], starts[6], starts[-1]) == (
        13, at(9), at(11, 30), at(13, 30), at(16, 30))
    assert {(s["capacity"], s["remaining"]) for s in listing["slots"]} == {(2, 2)}


async def test_a_slot_within_the_cutoff_is_shown_but_not_bookable(hall: Hall) -> None:
    _, client, _ = hall
    listing = await slots(client, OPENING.date())
    assert (slot_at(listing, at(9))["reason"], slot_at(listing, at(9, 30))["bookable"]) == (
        "booking_closed", True)
    assert await problem(await book(client, at(9))) == (409, "booking_closed")


async def test_a_blackout_day_has_no_slots_and_refuses_a_booking(hall: Hall) -> None:
    _, client, _ = hall
    listing = await slots(client, BLACKOUT, BLACKOUT + timedelta(days=1))
    assert listing["blackout_days"] == [BLACKOUT.isoformat()]
    assert {datetime.fromisoformat(s["start"]).date() for s in listing["slots"]} == {
        BLACKOUT + timedelta(days=1)}
    assert await problem(await book(client, at(10, days=2))) == (409, "blackout_day")


async def test_a_time_off_the_slot_grid_or_outside_opening_is_refused(hall: Hall) -> None:
    _, client, _ = hall
    assert await problem(await book(client, at(10, 10))) == (422, "not_a_slot")
    assert await problem(await book(client, at(12, 30))) == (422, "not_a_slot")
    saturday = at(10, days=4)
    assert await problem(await book(client, saturday)) == (422, "not_a_slot")


async def test_booking_further_ahead_than_allowed_is_refused(hall: Hall) -> None:
    _, client, _ = hall
    assert (await book(client, at(10, days=6))).status == 201
    assert await problem(await book(client, at(10, days=8))) == (409, "too_far_ahead")


async def test_a_service_that_takes_no_appointments_is_a_404(hall: Hall) -> None:
    _, client, _ = hall
    assert await problem(await book(client, at(10), service="tax")) == (404, "unknown_service")


# ---------------------------------------------------------------- book, change, cancel


async def test_a_booking_returns_a_code_and_takes_a_place(hall: Hall) -> None:
    server, client, _ = hall
    body = await booked(client, at(10))
    assert (len(body["code"]), body["status"], body["channel"]) == (10, "booked", "mobile")
    assert body["holder"] == {"name": "张*", "phone": "138****5678"}
    assert slot_at(await slots(client, OPENING.date()), at(10))["remaining"] == 1
    fetched = await (await client.get(f"/api/v1/bookings/{body['code']}")).json()
    assert (fetched["slot_start"], fetched["service_name"]) == (body["slot_start"], "企业设立登记")
    raw = await server.pool.fetchrow("SELECT * FROM citizens")
    assert "张三".encode() not in bytes(raw["name_enc"])


async def test_a_full_slot_refuses_the_next_booking(hall: Hall) -> None:
    _, client, _ = hall
    await booked(client, at(10), person(1))
    await booked(client, at(10), person(2))
    assert await problem(await book(client, at(10), person(3))) == (409, "slot_full")
    assert slot_at(await slots(client, OPENING.date()), at(10))["reason"] == "slot_full"


async def test_bookings_racing_for_the_last_place_let_exactly_one_in(hall: Hall) -> None:
    server, client, _ = hall
    await booked(client, at(10), person(0))
    responses = await asyncio.gather(*(book(client, at(10), person(n)) for n in range(1, 11)))
    assert sorted(r.status for r in responses) == [201] + [409] * 9
    assert await server.pool.fetchval(
        "SELECT count(*) FROM appointments WHERE slot_start = $1", at(10)) == 2


async def test_a_change_moves_the_place_to_the_new_slot(hall: Hall) -> None:
    _, client, _ = hall
    code = (await booked(client, at(10)))["code"]
    response = await client.post(f"/api/v1/bookings/{code}/change",
                                 json={"slot_start": at(14).isoformat()})
    assert (response.status, (await response.json())["slot_start"]) == (200, at(14).isoformat())
    listing = await slots(client, OPENING.date())
    assert (slot_at(listing, at(10))["remaining"], slot_at(listing, at(14))["remaining"]) == (
        2, 1)


async def test_a_change_to_a_full_slot_is_refused_and_keeps_the_old_one(hall: Hall) -> None:
    _, client, _ = hall
    code = (await booked(client, at(10)))["code"]
    await booked(client, at(14), person(1))
    await booked(client, at(14), person(2))
    response = await client.post(f"/api/v1/bookings/{code}/change",
                                 json={"slot_start": at(14).isoformat()})
    assert await problem(response) == (409, "slot_full")
    kept = await (await client.get(f"/api/v1/bookings/{code}")).json()
    assert kept["slot_start"] == at(10).isoformat()


async def test_a_cancel_frees_the_place_and_ends_the_booking(hall: Hall) -> None:
    _, client, _ = hall
    code = (await booked(client, at(10)))["code"]
    response = await client.post(f"/api/v1/bookings/{code}/cancel")
    assert (response.status, (await response.json())["status"]) == (200, "cancelled")
    assert slot_at(await slots(client, OPENING.date()), at(10))["remaining"] == 2
    again = await client.post(f"/api/v1/bookings/{code}/cancel")
    assert await problem(again) == (409, "appointment_not_bookable")


async def test_a_citizen_holds_only_so_many_open_bookings(hall: Hall) -> None:
    _, client, _ = hall
    for hour in (10, 11, 14):
        await booked(client, at(hour))
    assert await problem(await book(client, at(15))) == (409, "too_many_bookings")


async def test_a_booking_needs_a_name_and_an_id_number_or_phone(hall: Hall) -> None:
    _, client, _ = hall
    assert (await book(client, at(10), {"name": "张三"})).status == 422
    assert (await book(client, at(10), {"phone": "13812345678"})).status == 422


async def test_an_imported_booking_is_changed_on_the_backend_only(hall: Hall) -> None:
    _, client, _ = hall
    start = at(10)
    await client.post("/api/v1/backend/appointments", headers=bearer(BACKEND), json={
        "appointments": [{"code": "BK0001", "service": "biz", "slot_start": start.isoformat(),
                          "slot_end": (start + timedelta(minutes=30)).isoformat()}]})
    response = await client.post("/api/v1/bookings/BK0001/cancel")
    assert await problem(response) == (409, "managed_by_backend")


async def test_bookings_reach_the_event_stream_without_their_code(hall: Hall) -> None:
    server, client, _ = hall
    code = (await booked(client, at(10)))["code"]
    await client.post(f"/api/v1/bookings/{code}/cancel")
    rows = await server.pool.fetch(
        "SELECT type, data FROM hall_events WHERE type LIKE 'appointment.%' ORDER BY seq")
    assert [row["type"] for row in rows] == ["appointment.booked", "appointment.cancelled"]
    assert all(code not in row["data"] for row in rows)
    assert json.loads(rows[0]["data"])["channel"] == "mobile"


async def test_appointment_events_read_back_from_the_log(hall: Hall) -> None:
    server, client, _ = hall
    body = await booked(client, at(10))
    [stored] = [s for s in await server.runtime.store.read_since(0)
                if s.event.type == "appointment.booked"]
    assert (stored.event.slot_start, stored.event.service) == (  # type: ignore[attr-defined]
        datetime.fromisoformat(body["slot_start"]), "biz")


async def test_the_slot_listing_is_in_the_api_description(hall: Hall) -> None:
    _, client, _ = hall
    document = await (await client.get("/api/v1/openapi.json")).json()
    assert {"/api/v1/appointment-slots", "/api/v1/bookings", "/api/v1/mobile/tickets"} <= set(
        document["paths"])


# ---------------------------------------------------------------- check-in by ID card


async def test_an_id_card_checks_in_todays_booking_called_at_its_slot(hall: Hall) -> None:
    server, client, clock = hall
    code = (await booked(client, at(10)))["code"]
    staff = await open_window(client, "W2", "wang")
    for _ in range(2):
        await client.post("/api/v1/tickets", json={"service": "biz"}, headers=bearer(KIOSK))
    response = await check_in_by_card(client)
    ticket = await response.json()
    assert (response.status, ticket["source"], ticket["number"]) == (201, "appointment", "A003")
    assert (await (await client.get(f"/api/v1/bookings/{code}")).json())["ticket_id"] == (
        ticket["id"])
    first = await client.post("/api/v1/windows/W2/call-next", headers=staff)
    assert (await first.json())["ticket"] == "A001"
    clock.moment = at(9, 51)
    await client.post("/api/v1/windows/W2/start", headers=staff)
    await client.post("/api/v1/windows/W2/finish", headers=staff)
    due = await client.post("/api/v1/windows/W2/call-next", headers=staff)
    assert (await due.json())["ticket"] == "A003"
    assert server.runtime.engine.ticket(ticket["id"]).appointment_slot == at(10)


async def test_an_id_card_without_a_booking_today_is_a_404(hall: Hall) -> None:
    _, client, _ = hall
    await booked(client, at(10, days=1))
    await open_window(client, "W2", "wang")
    assert await problem(await check_in_by_card(client)) == (404, "no_appointment_today")


async def test_an_id_card_checks_a_booking_in_only_once(hall: Hall) -> None:
    _, client, _ = hall
    await booked(client, at(10))
    await open_window(client, "W2", "wang")
    assert (await check_in_by_card(client)).status == 201
    assert await problem(await check_in_by_card(client)) == (404, "no_appointment_today")


# ---------------------------------------------------------------- late and missed


async def test_a_check_in_within_the_grace_is_still_an_appointment(hall: Hall) -> None:
    _, client, clock = hall
    await booked(client, at(10))
    await open_window(client, "W2", "wang")
    clock.moment = at(10, 15)
    ticket = await (await check_in_by_card(client)).json()
    assert ticket["source"] == "appointment"


async def test_a_check_in_beyond_the_grace_becomes_a_walk_in(hall: Hall) -> None:
    server, client, clock = hall
    code = (await booked(client, at(10)))["code"]
    await open_window(client, "W2", "wang")
    clock.moment = at(10, 16)
    response = await client.post("/api/v1/tickets", json={"appointment_code": code},
                                 headers=bearer(KIOSK))
    assert (response.status, (await response.json())["source"]) == (201, "walk_in")
    row = await server.pool.fetchrow("SELECT status, checked_in_as FROM appointments")
    assert (row["status"], row["checked_in_as"]) == ("checked_in", "walk_in")


async def test_the_refuse_policy_turns_a_check_in_beyond_the_grace_away(
    pool: asyncpg.Pool,
) -> None:
    config = replace(HALL, appointments=appointments(beyond_grace="refuse"))
    async for _, client, clock in hall_with(pool, config):
        code = (await booked(client, at(10)))["code"]
        await open_window(client, "W2", "wang")
        clock.moment = at(10, 16)
        assert await problem(await check_in_by_card(client)) == (409, "appointment_too_late")
        kept = await (await client.get(f"/api/v1/bookings/{code}")).json()
        assert kept["status"] == "booked"


async def test_a_booking_nobody_checked_in_is_missed_after_its_slot_and_grace(
    hall: Hall,
) -> None:
    server, client, clock = hall
    code = (await booked(client, at(9, 30)))["code"]
    clock.moment = at(10, 14)
    await server.runtime.tick()
    assert (await (await client.get(f"/api/v1/bookings/{code}")).json())["status"] == "booked"
    clock.moment = at(10, 16)
    stored = await server.runtime.tick()
    missed = [s.event for s in stored if s.event.type == "appointment.missed"]
    assert [(m.service, m.slot_start) for m in missed] == [("biz", at(9, 30))]  # type: ignore[attr-defined]
    assert (await (await client.get(f"/api/v1/bookings/{code}")).json())["status"] == "missed"


async def test_a_missed_booking_is_announced_once(hall: Hall) -> None:
    server, client, clock = hall
    await booked(client, at(9, 30))
    clock.moment = at(10, 16)
    await server.runtime.tick()
    clock.moment = at(10, 17)
    await server.runtime.tick()
    count = await server.pool.fetchval(
        "SELECT count(*) FROM hall_events WHERE type = 'appointment.missed'")
    assert count == 1


async def test_a_missed_booking_no_longer_checks_in(hall: Hall) -> None:
    server, client, clock = hall
    code = (await booked(client, at(9, 30)))["code"]
    await open_window(client, "W2", "wang")
    clock.moment = at(10, 16)
    await server.runtime.tick()
    response = await client.post("/api/v1/tickets", json={"appointment_code": code},
                                 headers=bearer(KIOSK))
    assert await problem(response) == (409, "appointment_not_bookable")
