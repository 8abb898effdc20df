"""Signage end to end: a manager edits over REST, the screens get ``display.signage``
over a real Mosquitto, the hall's timer changes it when the schedule says, and
urgent notices come and go. Schedule resolution itself is in test_signage_schedule.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import aiomqtt
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devices.topics import DeviceKind
from hall import signage_publisher
from hall.config import DeviceEntry
from hall.eventstore import StoredEvent
from hall.hall_events import DeviceChanged
from hall.http import build_app
from signage.schedule import plan
from tests.bus_kit import Bus, hall_on_bus
from tests.engine_kit import OPENING
from tests.hall_kit import ManualClock
from tests.mqtt_kit import Mosquitto, mqtt_client, next_message
from tests.test_api_hall import HALL, session

SPECS = (
    DeviceEntry("screen-w1", DeviceKind.WINDOW_SCREEN, "1号窗口屏", area="F1A", screen="W1"),
    DeviceEntry("board-1", DeviceKind.HALL_BOARD, "一楼综合屏", area="F1A"),
    DeviceEntry("board-2", DeviceKind.HALL_BOARD, "二楼休息区屏", area="F2A"),
    DeviceEntry("led-1", DeviceKind.LED_STRIP, "一楼条屏", area="F1A"),
)
SIGNAGE_HALL = replace(HALL, devices=SPECS)

Client = TestClient[Any, Any]

LAYOUT = {"name": "休息区", "regions": [
    {"id": "main", "kind": "media", "x": 0, "y": 0, "w": 70, "h": 90},
    {"id": "calls", "kind": "calling", "x": 70, "y": 0, "w": 30, "h": 90},
    {"id": "ticker", "kind": "ticker", "x": 0, "y": 90, "w": 100, "h": 10},
]}
VIDEO = {"kind": "video", "title": "宣传片", "url": "https://media.example/promo.mp4"}
QUEUE = {"kind": "queue", "title": "排队情况", "seconds": 20, "services": ["biz"]}
MORNING = {"name": "上午", "group": "rest", "layout": "rest", "playlist": {"main": ["promo"]},
           "start": "09:00", "end": "12:00"}


@dataclass
class Hall:
    bus: Bus
    client: Client
    manager: dict[str, str]
    clock: ManualClock


@pytest.fixture
async def hall(pool: asyncpg.Pool, mosquitto: Mosquitto) -> AsyncIterator[Hall]:
    async with (hall_on_bus(pool, mosquitto, SIGNAGE_HALL) as bus,
                TestClient(TestServer(build_app(bus.server))) as client):
        clock = bus.server.runtime.clock
        assert isinstance(clock, ManualClock)
        yield Hall(bus, client, await session(client, "boss"), clock)


async def signage(client: aiomqtt.Client, timeout: float = 5.0) -> dict[str, Any]:
    """The next display.signage this screen gets, past its live views."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        message = await next_message(client, max(left, 0.01))
        shown: dict[str, Any] = json.loads(message.payload)
        if shown["type"] == "display.signage":
            return shown


async def signage_where(client: aiomqtt.Client, wanted: Any) -> dict[str, Any]:
    """The first display.signage for which ``wanted(message)`` holds (earlier edits send
    their own on the way)."""
    while True:
        shown = await signage(client)
        if wanted(shown):
            return shown


async def signage_within(client: aiomqtt.Client, seconds: float) -> list[dict[str, Any]]:
    """Every display.signage the screen gets in the next ``seconds``."""
    found = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for message in client.messages:
                shown = json.loads(message.payload)
                if shown["type"] == "display.signage":
                    found.append(shown)
    return found


async def put(hall: Hall, path: str, body: dict[str, Any]) -> Any:
    response = await hall.client.put(f"/api/v1/signage/{path}", json=body,
                                     headers=hall.manager)
    assert response.status == 200, await response.text()
    return await response.json()


async def rest_area(hall: Hall, **schedule: Any) -> None:
    await put(hall, "layouts/rest", LAYOUT)
    await put(hall, "items/promo", VIDEO)
    await put(hall, "items/queue-biz", QUEUE)
    await put(hall, "groups/rest", {"name": "二楼", "floors": [2]})
    await put(hall, "schedules/morning", {**MORNING, **schedule})


async def test_a_manager_edit_reaches_the_screen_as_signage(hall: Hall) -> None:
    async with screen_of(hall, "board-2") as board:
        await rest_area(hall)
        shown = await signage_where(board, lambda s: s["schedule"] is not None)
    assert (shown["layout"], shown["schedule"], shown["name"]) == ("rest", "morning", "休息区")
    regions = {region["id"]: region for region in shown["regions"]}
    assert [item["url"] for item in regions["main"]["items"]] == [VIDEO["url"]]
    assert regions["calls"]["kind"] == "calling"
    assert shown["until"] == "2026-11-24T12:00:00+08:00"


async def test_an_edit_to_the_playlist_sends_the_new_content(hall: Hall) -> None:
    await rest_area(hall)
    async with screen_of(hall, "board-2") as board:
        await put(hall, "schedules/morning", {**MORNING, "playlist": {"main": ["queue-biz"]}})
        shown = await signage_where(
            board, lambda s: [i["id"] for i in s["regions"][0]["items"]] == ["queue-biz"])
    assert shown["regions"][0]["items"][0]["services"] == ["biz"]


async def test_screens_outside_the_group_get_no_layout(hall: Hall) -> None:
    async with screen_of(hall, "board-1") as board:
        await rest_area(hall)
        shown = await signage(board)
        await asyncio.sleep(0.3)
        later = await signage_within(board, 0.5)
    assert later == []  # the rest of the edits changed nothing for it
    assert (shown["layout"], shown["regions"], shown["notices"]) == (None, [], [])


async def test_the_schedule_changes_the_screen_on_its_own_timer(hall: Hall) -> None:
    await rest_area(hall, end="09:05")
    async with screen_of(hall, "board-2") as board:
        hall.clock.moment += timedelta(minutes=5)
        shown = await signage_where(board, lambda s: s["schedule"] is None)
    assert shown["layout"] is None


async def test_a_screen_coming_online_gets_its_signage_again(hall: Hall) -> None:
    await rest_area(hall)
    async with screen_of(hall, "board-2") as board:
        await board.publish("hall/test/board-2/status", json.dumps(
            {"v": 1, "state": "online", "kind": "hall_board"}), qos=1, retain=True)
        shown = await signage(board)
    assert shown["schedule"] == "morning"


def came_online(seq: int, device_id: str, kind: DeviceKind) -> StoredEvent:
    return StoredEvent(seq, "test", OPENING.date(), DeviceChanged(
        at=OPENING, device_id=device_id, change="online", kind=kind.value, window_id=None,
        area=None, online=True, paper="ok", cover="closed", errors=()))


async def test_screens_coming_back_in_bursts_are_planned_once_and_alone(
    hall: Hall, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a broker restart thousands of screens come back in bursts: planning the whole
    hall for each burst held the loop."""
    await rest_area(hall)
    hub = hall.bus.server.signage
    planned: list[list[str]] = []

    def counting_plan(content: Any, screens: Any, at: Any, zone: Any) -> Any:
        screens = list(screens)
        planned.append(sorted(screen.id for screen in screens))
        return plan(content, screens, at, zone)

    monkeypatch.setattr(signage_publisher, "plan", counting_plan)
    async with screen_of(hall, "board-1") as board:
        hub._on_events([came_online(900, "board-1", DeviceKind.HALL_BOARD)])
        hub._on_events([came_online(901, "board-2", DeviceKind.HALL_BOARD)])
        shown = await signage(board)
        await asyncio.sleep(0.1)
    assert planned == [["board-1", "board-2"]]
    assert shown["schedule"] is None  # board-1 is not in the rest area's group


async def test_an_urgent_notice_reaches_every_screen_and_no_led_strip(hall: Hall) -> None:
    async with contextlib.AsyncExitStack() as stack:
        screens = [await stack.enter_async_context(screen_of(hall, device))
                   for device in ("screen-w1", "board-1", "board-2")]
        led = await stack.enter_async_context(screen_of(hall, "led-1"))
        response = await hall.client.post("/api/v1/signage/notices", headers=hall.manager,
                                          json={"text": "系统升级，暂停受理", "minutes": 30})
        assert response.status == 201, await response.text()
        notice = await response.json()
        for each in screens:
            shown = await signage(each)
            assert [n["text"] for n in shown["notices"]] == ["系统升级，暂停受理"]
            assert shown["notices"][0]["level"] == "urgent"
        assert await signage_within(led, 0.5) == []
    assert notice["expires_at"] == "2026-11-24T09:30:00+08:00"


async def test_an_expired_notice_leaves_the_screens(hall: Hall) -> None:
    async with screen_of(hall, "screen-w1") as window_screen:
        response = await hall.client.post("/api/v1/signage/notices", headers=hall.manager,
                                          json={"text": "临时通知", "minutes": 1})
        assert response.status == 201
        assert (await signage(window_screen))["notices"]
        hall.clock.moment += timedelta(minutes=1)
        shown = await signage(window_screen)
    assert shown["notices"] == []


async def test_a_withdrawn_notice_leaves_the_screens_at_once(hall: Hall) -> None:
    async with screen_of(hall, "board-1") as board:
        response = await hall.client.post("/api/v1/signage/notices", headers=hall.manager,
                                          json={"text": "临时通知", "minutes": 60})
        notice = await response.json()
        await signage(board)
        gone = await hall.client.delete(f"/api/v1/signage/notices/{notice['id']}",
                                        headers=hall.manager)
        assert gone.status == 204
        shown = await signage(board)
    assert shown["notices"] == []


async def test_notices_are_public_for_the_touch_query_pages(hall: Hall) -> None:
    await hall.client.post("/api/v1/signage/notices", headers=hall.manager,
                           json={"text": "今日下午停电检修", "level": "warning", "minutes": 60})
    response = await hall.client.get("/api/v1/signage/notices")
    assert [(n["text"], n["level"]) for n in await response.json()] == [
        ("今日下午停电检修", "warning")]


async def test_a_hall_without_signage_sends_its_screens_none(hall: Hall) -> None:
    async with screen_of(hall, "board-1") as board:
        await board.publish("hall/test/board-1/status", json.dumps(
            {"v": 1, "state": "online", "kind": "hall_board"}), qos=1, retain=True)
        assert await signage_within(board, 0.5) == []
    assert hall.bus.server.signage.published == 0


async def test_a_schedule_with_an_unknown_layout_is_refused(hall: Hall) -> None:
    await put(hall, "groups/rest", {"name": "二楼", "floors": [2]})
    response = await hall.client.put("/api/v1/signage/schedules/morning", json=MORNING,
                                     headers=hall.manager)
    body = await response.json()
    assert (response.status, body["code"], body["field"]) == (422, "invalid_content", "layout")


async def test_a_layout_in_use_cannot_be_deleted(hall: Hall) -> None:
    await rest_area(hall)
    response = await hall.client.delete("/api/v1/signage/layouts/rest", headers=hall.manager)
    body = await response.json()
    assert (response.status, body["code"], body["schedules"]) == (409, "in_use", ["morning"])


async def test_a_layout_change_that_breaks_a_schedule_is_refused(hall: Hall) -> None:
    await rest_area(hall)
    without_main = {**LAYOUT, "regions": LAYOUT["regions"][1:]}
    response = await hall.client.put("/api/v1/signage/layouts/rest", json=without_main,
                                     headers=hall.manager)
    assert (response.status, (await response.json())["code"]) == (409, "breaks_schedule")


async def test_a_video_in_the_ticker_is_refused(hall: Hall) -> None:
    await rest_area(hall)
    response = await hall.client.put(
        "/api/v1/signage/schedules/morning", headers=hall.manager,
        json={**MORNING, "playlist": {"ticker": ["promo"]}})
    assert (response.status, (await response.json())["field"]) == (422, "playlist.ticker")


async def test_staff_cannot_edit_signage(hall: Hall) -> None:
    staff = await session(hall.client, "zhang")
    response = await hall.client.put("/api/v1/signage/layouts/rest", json=LAYOUT,
                                     headers=staff)
    assert response.status == 403


async def test_signage_edits_are_audited(hall: Hall) -> None:
    await rest_area(hall)
    rows = await hall.bus.server.pool.fetch(
        "SELECT actor, action, target FROM audit_log WHERE action LIKE 'signage.%' ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("boss", "signage.layout.put", "rest"), ("boss", "signage.item.put", "promo"),
        ("boss", "signage.item.put", "queue-biz"), ("boss", "signage.group.put", "rest"),
        ("boss", "signage.schedule.put", "morning")]


async def test_what_a_screen_will_show_can_be_asked_ahead(hall: Hall) -> None:
    await rest_area(hall)
    now = await hall.client.get("/api/v1/signage/screens/board-2", headers=hall.manager)
    later = await hall.client.get("/api/v1/signage/screens/board-2",
                                  params={"at": "2026-11-24T13:00:00+08:00"},
                                  headers=hall.manager)
    assert (await now.json())["schedule"] == "morning"
    assert (await later.json())["schedule"] is None


async def test_a_notice_that_would_expire_at_once_is_refused(hall: Hall) -> None:
    response = await hall.client.post("/api/v1/signage/notices", headers=hall.manager, json={
        "text": "过期", "expires_at": "2026-11-24T08:00:00+08:00"})
    assert (response.status, (await response.json())["code"]) == (422, "already_expired")


@contextlib.asynccontextmanager
async def screen_of(hall: Hall, device_id: str) -> AsyncIterator[aiomqtt.Client]:
    async with mqtt_client(hall.bus.broker, device_id) as client:
        await client.subscribe(f"hall/test/{device_id}/display", qos=1)
        yield client
