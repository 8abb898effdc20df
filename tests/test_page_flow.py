"""One citizen through the whole hall, every screen in a real Chromium at once: the kiosk
takes the ticket, the clerk's virtual caller calls it, the hall board and the window
screen show it, the clerk finishes, the citizen rates, and the status wall and the
manager's report follow."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, expect

from tests.browser_kit import (
    BOARD,
    KIOSK,
    WINDOW_PC,
    WINDOW_SCREEN,
    LiveHall,
    live_hall,
    no_page_errors,
    open_page,
    shot,
)
from tests.test_api_hall import HALL, PASSWORD
from tests.test_api_hall import KIOSK as KIOSK_TOKEN
from tests.test_page_caller import open_caller, press_key


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, HALL) as started:
        yield started


async def token_of(hall: LiveHall, staff: str) -> str:
    async with aiohttp.ClientSession() as http, http.post(
            hall.url("/api/v1/auth/login"), json={"staff_id": staff, "password": PASSWORD}
    ) as response:
        return str((await response.json())["token"])


async def test_a_citizen_goes_through_the_hall_and_every_screen_follows(
    browser: Browser, hall: LiveHall,
) -> None:
    clerk = await open_caller(browser, hall)
    manager = await token_of(hall, "boss")
    board = await open_page(browser, hall, "/ui/board/", BOARD)
    screen = await open_page(browser, hall, "/ui/window-screen/?screen=W1", WINDOW_SCREEN)
    wall = await open_page(browser, hall, f"/ui/wall/?token={manager}", BOARD)
    await expect(wall.locator('[data-window="W1"]')).to_have_attribute("data-state", "idle")

    kiosk = await open_page(browser, hall, f"/ui/kiosk/?token={KIOSK_TOKEN}", KIOSK)
    await expect(kiosk.locator("body")).to_have_attribute("data-ready", "true")
    await kiosk.locator('[data-category="商事登记"]').click()
    await kiosk.locator('[data-service="biz"]').click()
    await kiosk.locator('[data-way="walkin"]').click()
    await expect(kiosk.locator("#ticket-number")).to_have_text("A001")
    await shot(kiosk, "flow-1-kiosk-ticket")

    await press_key(clerk, "call_next")
    await expect(clerk.locator("#state-chip")).to_have_text("呼叫中")
    await expect(board.locator("#now .call.first .number")).to_have_text("A001")
    await expect(board.locator("#now .call.first .where b")).to_have_text("1号窗口")
    await expect(screen.locator('[data-window="W1"] .number')).to_have_text("A001")
    await expect(wall.locator('[data-window="W1"]')).to_have_attribute("data-state", "calling")
    await shot(board, "flow-2-board-calling")
    await shot(screen, "flow-2-window-screen-calling")

    await press_key(clerk, "start")
    await expect(wall.locator('[data-window="W1"]')).to_have_attribute("data-state", "serving")
    await expect(clerk.locator('#buttons [data-action="evaluate"]')).to_be_enabled()
    await press_key(clerk, "evaluate")
    await expect(clerk.locator("#evaluation-dialog")).to_be_visible()
    link = await clerk.locator("#evaluation-link").get_attribute("href")
    assert link is not None
    await clerk.locator('#evaluation-dialog button[type="submit"]').click()
    await press_key(clerk, "finish")
    await expect(clerk.locator("#state-chip")).to_have_text("空闲")
    await expect(wall.locator('[data-window="W1"]')).to_have_attribute("data-state", "idle")

    rating = await open_page(browser, hall, link, (1280, 800))
    await rating.locator('[data-rating="5"]').click()
    await rating.locator("#submit").click()
    await expect(rating.locator(".thanks-title")).to_have_text("感谢您的评价！")
    await shot(rating, "flow-3-evaluation-thanks")
    await shot(wall, "flow-4-wall-after")

    report = await open_page(browser, hall, f"/ui/console/?token={manager}#reports", WINDOW_PC,
                             locale="zh-CN")
    await expect(report.locator('#kpis [data-kpi="tickets"] .value')).to_have_text("1")
    await expect(report.locator('#kpis [data-kpi="served"] .value')).to_have_text("1")
    await shot(report, "flow-5-report-today")
    no_page_errors(hall)
