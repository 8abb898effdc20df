"""The live window-status wall (W1, W2) in a real Chromium: a colour per window state,
counts per area and for the hall, attendance anomalies, time-limit and device alerts,
and the floor/area filter, all following the hall live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from devices.topics import DeviceKind
from hall.auth import Principal, Role
from hall.config import DeviceEntry, TimeLimit, TimeLimits
from hall.hall_events import DeviceChanged
from queueing.tickets import Source
from tests.browser_kit import (
    BOARD,
    LiveHall,
    live_hall,
    no_page_errors,
    open_page,
    shot,
)
from tests.test_api_hall import HALL, PASSWORD

WALL_HALL = replace(
    HALL,
    time_limits=TimeLimits(TimeLimit(max_wait_minutes=10, max_service_minutes=15)),
    devices=(
        DeviceEntry("kiosk-f1", DeviceKind.KIOSK, "一楼取号机", area="F1A"),
        DeviceEntry("call-w3", DeviceKind.CALL_TERMINAL, "3号窗口呼叫器", area="F1B",
                    window="W3"),
    ),
)

STATE_COLOURS = {
    "not_logged_in": "rgb(154, 165, 177)",
    "idle": "rgb(31, 138, 76)",
    "calling": "rgb(11, 92, 173)",
    "serving": "rgb(106, 63, 181)",
    "paused": "rgb(194, 120, 3)",
    "closed": "rgb(74, 83, 97)",
}


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, WALL_HALL) as started:
        devices, now = started.server.devices, started.clock.now()
        devices.came_online("kiosk-f1", DeviceKind.KIOSK, "1.0", "cfg-1", now)
        devices.came_online("call-w3", DeviceKind.CALL_TERMINAL, "1.0", "cfg-1", now)
        yield started


async def staff_token(hall: LiveHall) -> str:
    """A manager's session, as a login makes it (without the password hash's cost)."""
    return await hall.server.sessions.create(Principal("boss", Role.MANAGER, "李主任"), None)


async def wall(browser: Browser, hall: LiveHall, query: str = "") -> Page:
    token = await staff_token(hall)
    page = await open_page(browser, hall, f"/ui/wall/?token={token}{query}", BOARD)
    await expect(page.locator("#hall-name")).to_have_text("测试大厅")
    return page


async def every_state(hall: LiveHall) -> None:
    """W1 serving, W2 calling, W3 idle, W4 paused, W5A closed, W5B not logged in."""
    runtime = hall.server.runtime
    for window, staff in (("W1", "zhang"), ("W2", "wang"), ("W3", "boss"), ("W4", "li")):
        await runtime.execute("login", window, staff)
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await runtime.execute("call_next", "W1")
    await runtime.execute("start", "W1")
    await runtime.execute("call_next", "W2")
    await runtime.execute("pause", "W4", "lunch", message="午休，13:30 恢复办理")
    await runtime.execute("close_window", "W5A")


async def test_each_window_shows_its_state_in_its_colour(browser: Browser, hall: LiveHall) -> None:
    page = await wall(browser, hall)
    await expect(page.locator('[data-window="W1"]')).to_have_attribute("data-state",
                                                                       "not_logged_in")
    await every_state(hall)
    expected = {"W1": "serving", "W2": "calling", "W3": "idle", "W4": "paused",
                "W5A": "closed", "W5B": "not_logged_in"}
    for window, state in expected.items():
        tile = page.locator(f'.tile[data-window="{window}"]')
        await expect(tile).to_have_attribute("data-state", state)
        await expect(tile).to_have_css("background-color", STATE_COLOURS[state])
    await expect(page.locator('[data-window="W1"] .ticket')).to_have_text("A001")
    await expect(page.locator('[data-window="W1"] .who')).to_have_text("张伟")
    await expect(page.locator('[data-window="W2"] .state')).to_have_text("呼叫中")
    await expect(page.locator('[data-window="W4"] .message')).to_have_text("午休，13:30 恢复办理")
    no_page_errors(hall)


async def test_counts_per_state_per_area_and_for_the_hall(browser: Browser, hall: LiveHall) -> None:
    page = await wall(browser, hall)
    await every_state(hall)
    f1a = page.locator('.area[data-area="F1A"]')
    await expect(f1a.locator('.chip[data-state="serving"] b')).to_have_text("1")
    await expect(f1a.locator('.chip[data-state="calling"] b')).to_have_text("1")
    await expect(f1a.locator('.chip[data-state="idle"] b')).to_have_text("0")
    f2a = page.locator('.area[data-area="F2A"]')
    await expect(f2a.locator('.chip[data-state="closed"] b')).to_have_text("1")
    await expect(f2a.locator('.chip[data-state="not_logged_in"] b')).to_have_text("1")
    totals = page.locator("#totals")
    for state, count in (("serving", 1), ("calling", 1), ("idle", 1), ("paused", 1),
                         ("closed", 1), ("not_logged_in", 1)):
        await expect(totals.locator(f'[data-state="{state}"] .number')).to_have_text(str(count))
    await expect(page.locator('#services [data-service="tax"] .count')).to_have_text("0 人")
    await hall.server.runtime.execute("issue", "tax", Source.WALK_IN)
    await expect(page.locator('#services [data-service="tax"] .count')).to_have_text("1 人")
    await shot(page, "wall-overview")
    no_page_errors(hall)


async def test_a_late_login_is_an_anomaly_on_the_tile(browser: Browser, hall: LiveHall) -> None:
    page = await wall(browser, hall)
    hall.clock.moment += timedelta(minutes=30)
    await hall.server.runtime.tick()
    tile = page.locator('.tile[data-window="W3"]')
    await expect(tile).to_have_class("tile state-not_logged_in anomaly")
    await expect(tile.locator(".badge")).to_have_text("迟到未登录")
    await expect(page.locator('#totals [data-state="anomaly"] .number')).to_have_text("6")
    no_page_errors(hall)


async def test_a_device_going_offline_raises_an_alert(browser: Browser, hall: LiveHall) -> None:
    page = await wall(browser, hall)
    await expect(page.locator("#alerts .none")).to_have_text("暂无告警")
    server = hall.server
    now = hall.clock.now()
    server.devices.went_offline("call-w3", now)
    await server.runtime.record([DeviceChanged(
        now, "call-w3", "offline", "call_terminal", "W3", "F1B", False, "ok", "closed", ())])
    alert = page.locator('#alerts [data-alert="offline/call-w3"]')
    await expect(alert.locator(".what")).to_have_text("设备离线")
    await expect(alert.locator(".detail")).to_have_text("call-w3 · 3号窗口")
    await expect(page.locator('.tile[data-window="W3"] .badge.alert')).to_have_text("设备离线")
    await expect(page.locator("#alert-count")).to_have_text("1")
    no_page_errors(hall)


async def test_waiting_and_serving_too_long_raise_alerts(browser: Browser, hall: LiveHall) -> None:
    runtime = hall.server.runtime
    page = await wall(browser, hall)
    await every_state(hall)
    await runtime.execute("issue", "tax", Source.WALK_IN)
    hall.clock.moment += timedelta(minutes=16)
    await hall.server.time_nodes.watcher.check()
    serving = page.locator('#alerts [data-kind="serving_too_long"]')
    await expect(serving.locator(".detail")).to_have_text("A001 · 1号窗口 · 限 15 分钟")
    await expect(serving.locator(".when")).to_have_text("16 分钟")
    waiting = page.locator('#alerts [data-kind="waiting_too_long"]')
    await expect(waiting.locator(".detail")).to_have_text("B001 · 发票申领 · 限 10 分钟")
    await expect(page.locator('.tile[data-window="W1"]')).to_have_class(
        "tile state-serving alerted")
    await expect(page.locator('#services [data-service="tax"] .count')).to_have_class(
        "count number long")
    server, now = hall.server, hall.clock.now()
    server.devices.health("kiosk-f1", "near_end", "closed", (), now)
    await server.runtime.record([DeviceChanged(
        now, "kiosk-f1", "health_changed", "kiosk", None, "F1A", True, "near_end", "closed", ())])
    await expect(page.locator('#alerts [data-kind="paper_near_end"] .what')).to_have_text(
        "纸张将尽")
    await expect(page.locator("#alert-count")).to_have_text("3")
    await shot(page, "wall-alerts")
    await runtime.execute("finish", "W1")
    await expect(serving).to_have_count(0)
    no_page_errors(hall)


async def test_the_filter_shows_one_floor_or_area(browser: Browser, hall: LiveHall) -> None:
    page = await wall(browser, hall, "&floor=2")
    await expect(page.locator(".area")).to_have_count(1)
    await expect(page.locator(".tile")).to_have_count(2)
    await expect(page.locator("#services li")).to_have_count(1)
    await every_state(hall)
    await expect(page.locator('#totals [data-state="closed"] .number')).to_have_text("1")
    await page.select_option("#filter", "area:F1B")
    await expect(page.locator(".area")).to_have_attribute("data-area", "F1B")
    await expect(page.locator(".tile")).to_have_count(2)
    await expect(page.locator('#totals [data-state="paused"] .number')).to_have_text("1")
    await expect(page.locator('#totals [data-state="serving"] .number')).to_have_text("0")
    assert "area=F1B" in page.url
    await shot(page, "wall-filtered")
    await page.select_option("#filter", "")
    await expect(page.locator(".area")).to_have_count(3)
    no_page_errors(hall)


async def test_without_a_token_the_wall_asks_for_a_login_for_alerts(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await open_page(browser, hall, "/ui/wall/", BOARD)
    await expect(page.locator("#login")).to_be_visible()
    await expect(page.locator(".tile")).to_have_count(6)
    await page.fill("#staff", "zhang")
    await page.fill("#password", PASSWORD)
    await page.click("#login button")
    await expect(page.locator("#login")).to_be_hidden()
    await expect(page.locator("#alerts .none")).to_have_text("暂无告警")
    no_page_errors(hall)
