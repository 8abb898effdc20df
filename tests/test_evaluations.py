"""Ratings (D10): tied to ticket, window, staff and case, one per ticket and
window, taken from the window's device or an evaluation page's token over REST
and from the evaluation terminal over MQTT, and sent to the backend on its
event stream as ``evaluation.recorded``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devices.topics import DeviceKind
from hall.auth import token_sha256
from hall.config import DeviceEntry, TokenEntry
from hall.http import build_app
from hall.server import HallServer
from tests.backend_sim import ReferenceBackend
from tests.bus_kit import Bus, hall_on_bus
from tests.hall_kit import serving
from tests.mqtt_kit import Mosquitto
from tests.test_api_hall import AUTH, BACKEND, HALL, KIOSK, bearer, open_window, take
from tests.test_device_link import DEVICE_HALL, device, log_in_w1, received, request

EVALUATOR = "eval-w1-token"
RATING_HALL = replace(
    HALL,
    auth=replace(AUTH, tokens=(*AUTH.tokens,
                               TokenEntry("eval-w1", "device", token_sha256(EVALUATOR)))),
    devices=(DeviceEntry("eval-w1", DeviceKind.EVALUATION_TERMINAL, "1号窗口评价器",
                         area="F1A", window="W1"),),
)

Client = TestClient[Any, Any]


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[tuple[HallServer, Client]]:
    server = await serving(pool, config=RATING_HALL)
    async with TestClient(TestServer(build_app(server))) as client:
        yield server, client
    await server.stop()


async def served_at(client: Client, window: str, staff: str) -> tuple[str, dict[str, str]]:
    """A ticket called and started at ``window``: its id and the staff's headers."""
    headers = await open_window(client, window, staff)
    taken = await (await take(client, {"service": "biz"})).json()
    for step in ("call-next", "start"):
        response = await client.post(f"/api/v1/windows/{window}/{step}", headers=headers)
        assert response.status == 200, await response.text()
    return taken["id"], headers


async def rate(client: Client, ticket_id: str, body: dict[str, Any],
               headers: dict[str, str] | None = None) -> Any:
    return await client.post(f"/api/v1/tickets/{ticket_id}/evaluation", json=body,
                             headers=headers or {})


async def recorded(server: HallServer) -> list[dict[str, Any]]:
    return [s.to_wire() for s in await server.runtime.store.read_since(0)
            if s.event.type == "evaluation.recorded"]


async def test_the_windows_device_rates_with_window_and_staff(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    ticket_id, _ = await served_at(client, "W1", "zhang")
    response = await rate(client, ticket_id, {"rating": 4, "reasons": ["等候较久"]},
                          bearer(EVALUATOR))
    body = await response.json()
    assert response.status == 201, body
    assert (body["window"], body["staff"], body["service"], body["rating"], body["reasons"],
            body["via"], body["case_id"]) == ("W1", "zhang", "biz", 4, ["等候较久"], "device", None)


async def test_a_second_rating_of_the_ticket_at_the_window_is_refused(
    hall: tuple[HallServer, Client],
) -> None:
    server, client = hall
    ticket_id, _ = await served_at(client, "W1", "zhang")
    await rate(client, ticket_id, {"rating": 5}, bearer(EVALUATOR))
    again = await rate(client, ticket_id, {"rating": 1}, bearer(EVALUATOR))
    assert (again.status, (await again.json())["code"]) == (409, "already_rated")
    assert [e["rating"] for e in await recorded(server)] == [5]


async def test_a_rating_names_the_case_the_backend_linked_to_the_ticket(
    hall: tuple[HallServer, Client],
) -> None:
    server, client = hall
    ticket_id, _ = await served_at(client, "W1", "zhang")
    backend = ReferenceBackend(client, BACKEND)
    await backend.report("JY2026031600042", "accepted", ticket_id)
    body = await (await rate(client, ticket_id, {"rating": 5}, bearer(EVALUATOR))).json()
    assert body["case_id"] == "JY2026031600042"
    stored = await server.pool.fetchval("SELECT case_id FROM evaluations")
    assert stored == "JY2026031600042"


async def test_a_ticket_the_window_never_called_is_not_rated_there(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    ticket_id, _ = await served_at(client, "W2", "wang")
    response = await rate(client, ticket_id, {"rating": 3}, bearer(EVALUATOR))
    assert (response.status, (await response.json())["code"]) == (409, "not_served_here")


async def test_an_evaluation_page_rates_with_the_token_of_its_request(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    ticket_id, headers = await served_at(client, "W1", "zhang")
    asked = await client.post("/api/v1/windows/W1/evaluation-request", headers=headers)
    grant = await asked.json()
    assert (asked.status, grant["ticket_id"]) == (200, ticket_id)
    response = await rate(client, ticket_id, {"rating": 5, "token": grant["token"]})
    body = await response.json()
    assert (response.status, body["window"], body["staff"], body["via"]) == (
        201, "W1", "zhang", "token")


async def test_a_token_for_another_ticket_or_made_up_is_refused(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    ticket_id, headers = await served_at(client, "W1", "zhang")
    grant = await (await client.post("/api/v1/windows/W1/evaluation-request",
                                     headers=headers)).json()
    other = await (await take(client, {"service": "biz"})).json()
    wrong_ticket = await rate(client, other["id"], {"rating": 5, "token": grant["token"]})
    made_up = await rate(client, ticket_id, {"rating": 5, "token": "x" * 32})
    assert (wrong_ticket.status, (await wrong_ticket.json())["code"]) == (403, "bad_token")
    assert (made_up.status, (await made_up.json())["code"]) == (403, "bad_token")


async def test_a_rating_without_a_token_needs_the_windows_device(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    ticket_id, headers = await served_at(client, "W1", "zhang")
    anonymous = await rate(client, ticket_id, {"rating": 5})
    by_staff = await rate(client, ticket_id, {"rating": 5}, headers)
    by_kiosk = await rate(client, ticket_id, {"rating": 5}, bearer(KIOSK))
    assert [anonymous.status, by_staff.status, by_kiosk.status] == [401, 403, 403]


async def test_a_rating_out_of_range_is_a_422(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    ticket_id, _ = await served_at(client, "W1", "zhang")
    response = await rate(client, ticket_id, {"rating": 6}, bearer(EVALUATOR))
    assert response.status == 422


async def test_the_backend_gets_the_rating_on_its_event_stream(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    ticket_id, _ = await served_at(client, "W1", "zhang")
    backend = ReferenceBackend(client, BACKEND)
    await backend.report("JY2026031600042", "accepted", ticket_id)
    backend.follow()
    try:
        await rate(client, ticket_id, {"rating": 2, "reasons": ["材料反复"]}, bearer(EVALUATOR))
        event = await backend.wait_for(lambda e: e["type"] == "evaluation.recorded")
    finally:
        await backend.stop()
    assert (event["ticket_id"], event["window_id"], event["staff_id"], event["case_id"],
            event["rating"], event["reasons"]) == (
        ticket_id, "W1", "zhang", "JY2026031600042", 2, ["材料反复"])


@pytest.fixture
async def bus(pool: asyncpg.Pool, mosquitto: Mosquitto) -> AsyncIterator[Bus]:
    async with hall_on_bus(pool, mosquitto, DEVICE_HALL) as started:
        yield started


async def called_over_mqtt(bus: Bus) -> str:
    await log_in_w1(bus)
    async with device(bus, "kiosk-1", "reply") as kiosk:
        taken = await request(kiosk, "kiosk-1", {"type": "kiosk.take_ticket",
                                                 "id": "take-000v001", "service": "biz"})
    async with device(bus, "term-w1", "reply") as terminal:
        await request(terminal, "term-w1", {"type": "terminal.call_next", "id": "call-000v001"})
    ticket_id: str = taken["result"]["ticket"]["id"]
    return ticket_id


async def test_an_mqtt_rating_emits_the_same_event(bus: Bus) -> None:
    ticket_id = await called_over_mqtt(bus)
    async with device(bus, "eval-w1", "reply") as evaluator:
        rated = await request(evaluator, "eval-w1", {
            "type": "evaluation.rate", "id": "rate-000v001", "ticket_id": ticket_id,
            "rating": 5, "reasons": ["态度好"]})
    assert rated["ok"], rated
    [event] = await recorded(bus.server)
    assert (event["ticket_id"], event["window_id"], event["staff_id"], event["service_id"],
            event["rating"], event["reasons"], event["via"], event["case_id"]) == (
        ticket_id, "W1", "zhang", "biz", 5, ["态度好"], "device", None)


async def test_the_evaluation_request_carries_a_token_the_page_rates_with(bus: Bus) -> None:
    ticket_id = await called_over_mqtt(bus)
    async with device(bus, "eval-w1", "cmd") as evaluator:
        async with device(bus, "term-w1", "reply") as terminal:
            await request(terminal, "term-w1", {"type": "terminal.evaluate", "id": "ask-000v001"})
        asked = await received(evaluator)
    async with TestClient(TestServer(build_app(bus.server))) as client:
        response = await rate(client, ticket_id, {"rating": 4, "token": asked["token"]})
        body = await response.json()
    assert (response.status, body["window"], body["via"]) == (201, "W1", "token")
