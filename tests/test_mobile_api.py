"""The mobile page's API (M1): remote tickets with a per-phone daily limit, the
live place of a ticket behind its check token, booking and the case query."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from tests.test_api_hall import BACKEND, KIOSK, bearer, open_window
from tests.test_appointments import (
    BOOKING_HALL,
    Client,
    Hall,
    appointments,
    at,
    hall_with,
    problem,
)

PHONE = "13812345678"


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[Hall]:
    async for each in hall_with(pool, BOOKING_HALL):
        yield each


async def remote(client: Client, phone: str = PHONE, service: str = "biz") -> Any:
    return await client.post("/api/v1/mobile/tickets",
                             json={"service": service, "phone": phone, "name": "张三"})


async def position(client: Client, ticket_id: str, token: str) -> Any:
    return await client.get(f"/api/v1/mobile/tickets/{ticket_id}?token={token}")


async def test_a_phone_takes_a_remote_ticket_with_a_check_token(hall: Hall) -> None:
    server, client, _ = hall
    await open_window(client, "W2", "wang")
    response = await remote(client)
    body = await response.json()
    assert (response.status, body["ticket"]["source"], body["ticket"]["number"]) == (
        201, "mobile", "A001")
    ticket = server.runtime.engine.ticket(body["ticket"]["id"])
    assert ticket.citizen_ref is not None
    identity = await server.citizens.load(int(ticket.citizen_ref))
    assert identity is not None and identity.phone == PHONE
    assert len(body["token"]) >= 20


async def test_a_phone_takes_at_most_its_daily_remote_tickets(hall: Hall) -> None:
    _, client, _ = hall
    await open_window(client, "W2", "wang")
    statuses = [(await remote(client)).status for _ in range(3)]
    over = await remote(client)
    assert (statuses, await problem(over)) == ([201] * 3, (429, "daily_limit_reached"))
    assert (await remote(client, phone="13900000000")).status == 201


async def test_the_daily_limit_holds_for_requests_at_once(hall: Hall) -> None:
    _, client, _ = hall
    await open_window(client, "W2", "wang")
    responses = await asyncio.gather(*(remote(client) for _ in range(8)))
    assert sorted(r.status for r in responses) == [201] * 3 + [429] * 5


async def test_a_refused_remote_ticket_does_not_count_against_the_limit(hall: Hall) -> None:
    _, client, _ = hall
    assert await problem(await remote(client)) == (409, "no_open_window")
    await open_window(client, "W2", "wang")
    assert [(await remote(client)).status for _ in range(3)] == [201] * 3


async def test_the_daily_limit_is_configurable(pool: asyncpg.Pool) -> None:
    config = replace(BOOKING_HALL, appointments=appointments(
        mobile={"tickets_per_phone_per_day": 1}))
    async for _, client, _ in hall_with(pool, config):
        await open_window(client, "W2", "wang")
        assert (await remote(client)).status == 201
        assert await problem(await remote(client)) == (429, "daily_limit_reached")


async def test_the_limit_starts_again_the_next_day(hall: Hall) -> None:
    server, client, clock = hall
    staff = await open_window(client, "W2", "wang")
    for _ in range(3):
        await remote(client)
    clock.moment = at(9, days=1)
    await server.runtime.tick()
    await client.post("/api/v1/windows/W2/logout", headers=staff)
    await open_window(client, "W2", "wang")
    assert (await remote(client)).status == 201


async def test_the_position_shows_people_ahead_with_the_right_token(hall: Hall) -> None:
    _, client, _ = hall
    staff = await open_window(client, "W2", "wang")
    await client.post("/api/v1/tickets", json={"service": "biz"}, headers=bearer(KIOSK))
    mine = await (await remote(client)).json()
    response = await position(client, mine["ticket"]["id"], mine["token"])
    body = await response.json()
    assert (response.status, body["status"], body["people_ahead"]) == (200, "waiting", 1)
    assert body["estimated_minutes"] is not None
    await client.post("/api/v1/windows/W2/call-next", headers=staff)
    await client.post("/api/v1/windows/W2/start", headers=staff)
    await client.post("/api/v1/windows/W2/finish", headers=staff)
    await client.post("/api/v1/windows/W2/call-next", headers=staff)
    called = await (await position(client, mine["ticket"]["id"], mine["token"])).json()
    assert (called["status"], called["window"], called["people_ahead"]) == (
        "called", "W2", None)


async def test_a_wrong_token_gets_the_same_404_as_an_unknown_ticket(hall: Hall) -> None:
    _, client, _ = hall
    await open_window(client, "W2", "wang")
    mine = await (await remote(client)).json()
    other = await (await remote(client, phone="13900000000")).json()
    wrong = await position(client, mine["ticket"]["id"], other["token"])
    unknown = await position(client, "2026-11-24-A999", mine["token"])
    assert await problem(wrong) == await problem(unknown) == (404, "unknown_ticket")


async def test_a_position_query_without_a_token_is_refused(hall: Hall) -> None:
    _, client, _ = hall
    await open_window(client, "W2", "wang")
    mine = await (await remote(client)).json()
    response = await client.get(f"/api/v1/mobile/tickets/{mine['ticket']['id']}")
    assert response.status == 422


async def test_the_mobile_page_books_without_credentials(hall: Hall) -> None:
    _, client, _ = hall
    response = await client.post("/api/v1/bookings", json={
        "service": "biz", "slot_start": at(10).isoformat(), "channel": "mobile",
        "citizen": {"name": "张三", "phone": PHONE}})
    assert (response.status, (await response.json())["channel"]) == (201, "mobile")


async def test_the_mobile_page_queries_a_case_by_its_code(hall: Hall) -> None:
    _, client, _ = hall
    await client.post("/api/v1/backend/cases/C2026-0001/progress", headers=bearer(BACKEND),
                      json={"status": "accepted", "message": "已受理"})
    response = await client.get("/api/v1/cases/C2026-0001")
    body = await response.json()
    assert (response.status, body[0]["status"], body[0]["message"]) == (200, "accepted", "已受理")
