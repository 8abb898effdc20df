"""The window screen page (Q10, Q12) in a real Chromium: what the citizen sees above the
counter follows the window live."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from playwright.async_api import Browser, expect

from queueing.tickets import Source
from tests.browser_kit import (
    WINDOW_SCREEN,
    LiveHall,
    live_hall,
    no_page_errors,
    open_page,
    shot,
)
from tests.test_api_hall import HALL


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, HALL) as started:
        yield started


async def test_the_screen_shows_the_number_called_and_the_clerk(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    page = await open_page(browser, hall, "/ui/window-screen/?screen=W1", WINDOW_SCREEN)
    position = page.locator('[data-window="W1"]')
    await expect(position.locator(".name")).to_have_text("1号窗口")
    await expect(position.locator(".staff")).to_have_text("工作人员：张伟")
    await runtime.execute("call_next", "W1")
    await expect(position.locator(".number")).to_have_text("A001")
    await expect(position.locator(".label")).to_have_text("请")
    await shot(page, "window-screen-calling")
    no_page_errors(hall)


async def test_a_paused_window_shows_its_message(browser: Browser, hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    page = await open_page(browser, hall, "/ui/window-screen/?screen=W1", WINDOW_SCREEN)
    await runtime.execute("pause", "W1", "lunch", message="午休，13:30 恢复办理")
    await expect(page.locator(".message")).to_have_text("午休，13:30 恢复办理")
    await shot(page, "window-screen-paused")
    no_page_errors(hall)


async def test_two_positions_share_one_screen(browser: Browser, hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W5A", "zhang")
    await runtime.execute("login", "W5B", "wang")
    await runtime.execute("issue", "fund", Source.WALK_IN)
    await runtime.execute("issue", "fund", Source.WALK_IN)
    await runtime.execute("call_next", "W5A")
    await runtime.execute("call_next", "W5B")
    page = await open_page(browser, hall, "/ui/window-screen/?screen=S5", WINDOW_SCREEN)
    await expect(page.locator(".position")).to_have_count(2)
    await expect(page.locator('[data-window="W5A"] .number')).to_have_text("D001")
    await expect(page.locator('[data-window="W5B"] .number')).to_have_text("D002")
    await shot(page, "window-screen-two-positions")
    no_page_errors(hall)
