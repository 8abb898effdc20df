"""Barcode time nodes and time limits (D12): a ticket's code scanned at the window
accepts it, marks its handling and finishes it, each scan a node on the ticket and
the event stream; waiting and serving past a service's limit raise and clear alerts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devices.topics import DeviceKind
from hall.auth import token_sha256
from hall.config import DeviceEntry, TimeLimit, TimeLimits, TokenEntry
from hall.hall_events import AlertCleared
from hall.http import build_app
from hall.server import HallServer
from queueing import Source
from tests.bus_kit import Bus, hall_on_bus
from tests.engine_kit import OPENING
from tests.hall_kit import ManualClock, serving
from tests.mqtt_kit import Mosquitto
from tests.test_api_hall import AUTH, HALL, KIOSK, bearer, open_window, session, take
from tests.test_config import load, problems
from tests.test_device_link import DEVICE_HALL, device, log_in_w1, request

TERMINAL = "term-w1-token"
LIMITS = TimeLimits(
    TimeLimit(max_wait_minutes=15),
    MappingProxyType({"biz": TimeLimit(max_wait_minutes=15, max_service_minutes=20)}),
)
SCAN_HALL = replace(
    HALL,
    auth=replace(AUTH, tokens=(*AUTH.tokens,
                               TokenEntry("term-w1", "device", token_sha256(TERMINAL)))),
    devices=(DeviceEntry("term-w1", DeviceKind.CALL_TERMINAL, "1号窗口呼叫器", area="F1A",
                         window="W1"),),
    time_limits=LIMITS,
)

Client = TestClient[Any, Any]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def hall(pool: asyncpg.Pool, clock: ManualClock) -> AsyncIterator[tuple[HallServer, Client]]:
    server = await serving(pool, clock, SCAN_HALL)
    async with TestClient(TestServer(build_app(server))) as client:
        yield server, client
    await server.stop()


async def called_at(client: Client, window: str, staff: str) -> tuple[str, dict[str, str]]:
    """A ticket taken and called at ``window``: its id, and the staff's headers."""
    headers = await open_window(client, window, staff)
    taken = await (await take(client, {"service": "biz"})).json()
    response = await client.post(f"/api/v1/windows/{window}/call-next", headers=headers)
    assert response.status == 200, await response.text()
    return taken["id"], headers


async def scan(client: Client, window: str, code: str, headers: dict[str, str]) -> Any:
    return await client.post(f"/api/v1/windows/{window}/scan-ticket", json={"code": code},
                             headers=headers)


async def alert_events(server: HallServer) -> list[tuple[str, str]]:
    return [(s.event.type, getattr(s.event, "kind", "")) for s in
            await server.runtime.store.read_since(0) if s.event.type.startswith("alert.")]


# ---------------------------------------------------------------- scans


async def test_three_scans_accept_mark_handling_and_finish(
    hall: tuple[HallServer, Client],
) -> None:
    server, client = hall
    ticket_id, headers = await called_at(client, "W1", "zhang")
    actions = []
    for _ in range(3):
        response = await scan(client, "W1", ticket_id, headers)
        assert response.status == 200, await response.text()
        actions.append((await response.json())["action"])
    assert actions == ["accepted", "handling", "finished"]
    assert server.runtime.engine.ticket(ticket_id).status.value == "finished"


async def test_every_scan_node_is_on_the_tickets_rest_view_with_window_and_staff(
    hall: tuple[HallServer, Client], clock: ManualClock,
) -> None:
    _, client = hall
    ticket_id, headers = await called_at(client, "W1", "zhang")
    for minutes in (1, 4, 9):
        clock.moment = OPENING + timedelta(minutes=minutes)
        await scan(client, "W1", ticket_id, headers)
    body = await (await client.get(f"/api/v1/tickets/{ticket_id}", headers=bearer(KIOSK))).json()
    scans = [(n["kind"], n["at"], n["window"], n["staff"]) for n in body["nodes"]
             if n["source"] == "scan"]
    assert scans == [
        ("accepted", (OPENING + timedelta(minutes=1)).isoformat(), "W1", "zhang"),
        ("handling", (OPENING + timedelta(minutes=4)).isoformat(), "W1", "zhang"),
        ("finished", (OPENING + timedelta(minutes=9)).isoformat(), "W1", "zhang"),
    ]
    engine_kinds = [n["kind"] for n in body["nodes"] if n["source"] == "engine"]
    assert engine_kinds == ["issued", "called", "started", "finished"]


async def test_each_scan_is_a_ticket_node_event_on_the_stream(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    ticket_id, headers = await called_at(client, "W1", "zhang")
    async with client.ws_connect("/api/v1/events?type=ticket.node") as ws:
        for _ in range(3):
            await scan(client, "W1", ticket_id, headers)
        got = [json.loads(await asyncio.wait_for(ws.receive_str(), 5)) for _ in range(3)]
    assert [(g["node"], g["ticket_id"], g["window_id"], g["staff_id"]) for g in got] == [
        (node, ticket_id, "W1", "zhang") for node in ("accepted", "handling", "finished")]


async def test_a_scan_of_another_windows_ticket_is_refused_and_changes_nothing(
    hall: tuple[HallServer, Client],
) -> None:
    server, client = hall
    ticket_id, _ = await called_at(client, "W2", "wang")
    zhang = await open_window(client, "W1", "zhang")
    response = await scan(client, "W1", ticket_id, zhang)
    assert (response.status, (await response.json())["code"]) == (409, "not_served_here")
    assert server.runtime.engine.ticket(ticket_id).status.value == "called"


async def test_an_unknown_code_is_refused(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    headers = await open_window(client, "W1", "zhang")
    response = await scan(client, "W1", "20991231-Z999", headers)
    assert (response.status, (await response.json())["code"]) == (404, "unknown_ticket")


async def test_a_finished_ticket_is_refused(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    ticket_id, headers = await called_at(client, "W1", "zhang")
    for _ in range(3):
        await scan(client, "W1", ticket_id, headers)
    response = await scan(client, "W1", ticket_id, headers)
    assert (response.status, (await response.json())["code"]) == (409, "ticket_already_ended")


async def test_a_ticket_still_waiting_is_refused(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    headers = await open_window(client, "W1", "zhang")
    taken = await (await take(client, {"service": "biz"})).json()
    response = await scan(client, "W1", taken["id"], headers)
    assert (response.status, (await response.json())["code"]) == (409, "ticket_not_called")


async def test_staff_scan_only_at_the_window_they_are_logged_in_at(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    ticket_id, _ = await called_at(client, "W1", "zhang")
    wang = await open_window(client, "W2", "wang")
    response = await scan(client, "W1", ticket_id, wang)
    assert (response.status, (await response.json())["code"]) == (403, "not_at_window")


async def test_the_windows_device_scans_there_and_nowhere_else(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    ticket_id, _ = await called_at(client, "W1", "zhang")
    at_w2 = await scan(client, "W2", ticket_id, bearer(TERMINAL))
    at_w1 = await scan(client, "W1", f" {ticket_id.lower()}\r\n", bearer(TERMINAL))
    assert (at_w2.status, (await at_w2.json())["code"]) == (403, "not_at_window")
    assert (at_w1.status, (await at_w1.json())["action"]) == (200, "accepted")


async def test_a_staff_scan_is_audited(hall: tuple[HallServer, Client]) -> None:
    server, client = hall
    ticket_id, headers = await called_at(client, "W1", "zhang")
    await scan(client, "W1", ticket_id, headers)
    await scan(client, "W1", ticket_id, headers)
    recent = await server.audit.recent()
    scans = [r for r in recent if r["action"] == "window.scan_ticket"]
    assert [(r["actor"], r["target"]) for r in scans] == [("zhang", "W1")] * 2


@pytest.fixture
async def bus(pool: asyncpg.Pool, mosquitto: Mosquitto) -> AsyncIterator[Bus]:
    async with hall_on_bus(pool, mosquitto, DEVICE_HALL) as started:
        yield started


async def test_a_call_terminal_scan_moves_the_ticket_on_and_a_retry_does_not(bus: Bus) -> None:
    await log_in_w1(bus)
    async with device(bus, "kiosk-1", "reply") as kiosk:
        taken = await request(kiosk, "kiosk-1", {"type": "kiosk.take_ticket",
                                                 "id": "take-000s001", "service": "biz"})
    ticket_id = taken["result"]["ticket"]["id"]
    async with device(bus, "term-w1", "reply") as terminal:
        await request(terminal, "term-w1", {"type": "terminal.call_next", "id": "call-000s001"})
        body = {"type": "terminal.scan", "id": "scan-000s001", "code": ticket_id}
        first = await request(terminal, "term-w1", body)
        retry = await request(terminal, "term-w1", body)
        second = await request(terminal, "term-w1", {**body, "id": "scan-000s002"})
    assert first == retry
    assert (first["result"]["action"], second["result"]["action"]) == ("accepted", "handling")
    assert first["result"]["window"]["state"] == "serving"


async def test_a_call_terminal_scan_of_an_unknown_code_is_refused(bus: Bus) -> None:
    await log_in_w1(bus)
    async with device(bus, "term-w1", "reply") as terminal:
        reply = await request(terminal, "term-w1", {"type": "terminal.scan",
                                                    "id": "scan-000u001", "code": "nothing"})
    assert (reply["ok"], reply["error"]["code"]) == (False, "unknown_ticket")


# ---------------------------------------------------------------- time limits


async def test_waiting_past_the_limit_raises_an_alert_and_calling_clears_it(
    hall: tuple[HallServer, Client], clock: ManualClock,
) -> None:
    server, client = hall
    watcher = server.time_nodes.watcher
    headers = await open_window(client, "W1", "zhang")
    taken = await (await take(client, {"service": "tax"})).json()
    clock.moment = OPENING + timedelta(minutes=14, seconds=59)
    await watcher.check()
    assert watcher.alerts() == []
    clock.moment = OPENING + timedelta(minutes=15)
    await watcher.check()
    [alert] = watcher.alerts()
    assert (alert.kind, alert.ticket_id, alert.service_id, alert.window_id) == (
        "waiting_too_long", taken["id"], "tax", None)
    listed = await (await client.get("/api/v1/alerts?source=time_limit", headers=headers)).json()
    assert [(a["kind"], a["ticket_id"], a["minutes"]) for a in listed] == [
        ("waiting_too_long", taken["id"], 15.0)]
    clock.moment = OPENING + timedelta(minutes=17)
    await client.post("/api/v1/windows/W1/call-next", headers=headers)
    await watcher.check()
    assert watcher.alerts() == []
    assert await alert_events(server) == [("alert.raised", "waiting_too_long"),
                                          ("alert.cleared", "waiting_too_long")]


async def test_serving_past_the_limit_raises_an_alert_with_window_and_staff(
    hall: tuple[HallServer, Client], clock: ManualClock,
) -> None:
    server, client = hall
    watcher = server.time_nodes.watcher
    ticket_id, headers = await called_at(client, "W1", "zhang")
    clock.moment = OPENING + timedelta(minutes=2)
    await scan(client, "W1", ticket_id, headers)
    clock.moment = OPENING + timedelta(minutes=21, seconds=59)
    await watcher.check()
    assert watcher.alerts() == []
    clock.moment = OPENING + timedelta(minutes=22)
    await watcher.check()
    [alert] = watcher.alerts()
    assert (alert.kind, alert.ticket_id, alert.window_id, alert.staff_id) == (
        "serving_too_long", ticket_id, "W1", "zhang")
    clock.moment = OPENING + timedelta(minutes=25)
    await scan(client, "W1", ticket_id, headers)
    await scan(client, "W1", ticket_id, headers)
    await watcher.check()
    assert watcher.alerts() == []
    cleared = [s.event for s in await server.runtime.store.read_since(0)
               if s.event.type == "alert.cleared"]
    assert [(c.at, c.minutes) for c in cleared if isinstance(c, AlertCleared)] == [
        (OPENING + timedelta(minutes=25), 23.0)]


async def test_an_alert_open_at_the_rollover_is_cleared_with_the_expired_ticket(
    hall: tuple[HallServer, Client], clock: ManualClock,
) -> None:
    server, client = hall
    watcher = server.time_nodes.watcher
    await open_window(client, "W1", "zhang")
    await take(client, {"service": "tax"})
    clock.moment = OPENING + timedelta(minutes=30)
    await watcher.check()
    clock.moment = OPENING + timedelta(days=1)
    await server.runtime.tick()
    await watcher.check()
    assert watcher.alerts() == []
    assert await alert_events(server) == [("alert.raised", "waiting_too_long"),
                                          ("alert.cleared", "waiting_too_long")]


async def test_the_watchers_own_timer_raises_the_alert_when_it_falls_due(
    hall: tuple[HallServer, Client], clock: ManualClock,
) -> None:
    server, client = hall
    await open_window(client, "W1", "zhang")
    await take(client, {"service": "tax"})
    clock.moment = OPENING + timedelta(minutes=16)
    async with asyncio.timeout(5):
        while not server.time_nodes.watcher.alerts():
            await asyncio.sleep(0.02)
    assert await alert_events(server) == [("alert.raised", "waiting_too_long")]


async def test_a_service_without_a_limit_raises_nothing(
    pool: asyncpg.Pool, clock: ManualClock,
) -> None:
    only_biz = TimeLimits(services=MappingProxyType({"biz": TimeLimit(max_wait_minutes=5)}))
    server = await serving(pool, clock, replace(SCAN_HALL, time_limits=only_biz))
    try:
        await server.runtime.execute("login", "W1", "zhang")
        await server.runtime.execute("issue", "tax", Source.WALK_IN)
        clock.moment = OPENING + timedelta(hours=3)
        await server.time_nodes.watcher.check()
        assert server.time_nodes.watcher.alerts() == []
    finally:
        await server.stop()


async def test_open_alerts_survive_a_restart_without_being_raised_twice(
    pool: asyncpg.Pool, clock: ManualClock,
) -> None:
    server = await serving(pool, clock, SCAN_HALL)
    await server.runtime.execute("login", "W1", "zhang")
    await server.runtime.execute("issue", "tax", Source.WALK_IN)
    clock.moment = OPENING + timedelta(minutes=20)
    await server.time_nodes.watcher.check()
    await server.stop()
    again = await serving(pool, clock, SCAN_HALL)
    try:
        await again.time_nodes.watcher.check()
        assert [a.kind for a in again.time_nodes.watcher.alerts()] == ["waiting_too_long"]
        assert await alert_events(again) == [("alert.raised", "waiting_too_long")]
    finally:
        await again.stop()


async def test_the_alert_list_holds_device_problems_too(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    staff = await session(client, "zhang")
    listed = await (await client.get("/api/v1/alerts?area=F1A", headers=staff)).json()
    assert [(a["source"], a["kind"], a["device_id"]) for a in listed] == [
        ("device", "offline", "term-w1")]


async def test_alerts_are_listed_only_for_people(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.get("/api/v1/alerts", headers=bearer(KIOSK))
    assert response.status == 403
    staff = await session(client, "zhang")
    assert (await client.get("/api/v1/alerts?area=F9", headers=staff)).status == 404


def test_time_limits_are_configured_per_service_with_a_default(tmp_path: Path) -> None:
    config = load(tmp_path, """
[[time_limits]]
max_wait_minutes = 30
max_service_minutes = 20

[[time_limits]]
service = "tax-02"
max_service_minutes = 45
""")
    limits = config.time_limits
    assert limits.of("tax-01") == TimeLimit(30, 20)
    assert limits.of("tax-02") == TimeLimit(30, 45)


def test_time_limits_for_an_unknown_service_are_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, """
[[time_limits]]
service = "nope"
max_wait_minutes = 30
""")
    assert found == ["time_limits[0].service: unknown service 'nope'"]


def test_a_service_given_time_limits_twice_is_refused(tmp_path: Path) -> None:
    found = problems(tmp_path, """
[[time_limits]]
service = "tax-01"
max_wait_minutes = 30

[[time_limits]]
service = "tax-01"
max_service_minutes = 30
""")
    assert found == ["time_limits[1]: service 'tax-01' already has its limits (time_limits[0])"]


def test_a_time_limit_must_be_positive(tmp_path: Path) -> None:
    found = problems(tmp_path, "[[time_limits]]\nmax_wait_minutes = 0\n")
    assert len(found) == 1 and found[0].startswith("time_limits[0].max_wait_minutes: ")
