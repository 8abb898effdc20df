"""The evaluation terminal's page (D10) in a real Chromium on a 1280×800 tablet: the
window asks (``evaluation.requested`` on the event stream), the citizen rates with the
five big buttons and reason chips, the rating is stored for the ticket, window and
clerk, thanks, and back to idle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from devices.topics import DeviceKind
from hall.auth import token_sha256
from hall.config import DeviceEntry, TokenEntry
from queueing.tickets import Source
from tests.browser_kit import LiveHall, live_hall, no_page_errors, open_page, shot
from tests.test_api_hall import HALL, PASSWORD, bearer

TABLET = (1280, 800)
EVAL_TOKEN = "eval-w1-secret-token"
EVAL_HALL = replace(
    HALL,
    auth=replace(HALL.auth, tokens=(
        *HALL.auth.tokens, TokenEntry("eval-w1", "device", token_sha256(EVAL_TOKEN)))),
    devices=(DeviceEntry("eval-w1", DeviceKind.EVALUATION_TERMINAL, "1号窗口评价器",
                         area="F1A", window="W1"),),
)
PAGE = f"/ui/evaluate/?window=W1&token={EVAL_TOKEN}&thanks=1"


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, EVAL_HALL) as started:
        yield started


async def serving_a001(hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await runtime.execute("call_next", "W1")
    await runtime.execute("start", "W1")


async def ask_for_rating(hall: LiveHall) -> dict[str, Any]:
    """What the clerk's virtual caller does when the service is done, over the live hall's
    own port (a second app on the same server would close the page's stream when it
    shuts down)."""
    async with aiohttp.ClientSession() as client:
        login = await client.post(hall.url("/api/v1/auth/login"),
                                  json={"staff_id": "zhang", "password": PASSWORD})
        headers = bearer((await login.json())["token"])
        response = await client.post(hall.url("/api/v1/windows/W1/evaluation-request"),
                                     headers=headers)
        body: dict[str, Any] = await response.json()
        assert response.status == 200, body
        return body


async def terminal(browser: Browser, hall: LiveHall) -> Page:
    page = await open_page(browser, hall, PAGE, TABLET)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


async def test_a_request_is_rated_stored_and_thanked(browser: Browser, hall: LiveHall) -> None:
    await serving_a001(hall)
    page = await terminal(browser, hall)
    await expect(page.locator(".idle-window")).to_have_text("1号窗口")
    await expect(page.locator(".idle-staff")).to_have_text("工作人员：张伟")
    await shot(page, "evaluate-idle")
    await ask_for_rating(hall)
    await expect(page.locator("#ticket-number")).to_have_text("号码 A001")
    await expect(page.locator(".rating")).to_have_count(5)
    await expect(page.locator('[data-rating="5"] .rating-label')).to_have_text("非常满意")
    await expect(page.locator('[data-rating="1"] .rating-label')).to_have_text("非常不满意")
    await shot(page, "evaluate-ask")
    await page.locator('[data-rating="5"]').click()
    await page.locator('[data-reason="good_1"]').click()
    await page.locator('[data-reason="good_2"]').click()
    await shot(page, "evaluate-chosen")
    await page.locator("#submit").click()
    await expect(page.locator(".thanks-title")).to_have_text("感谢您的评价！")
    await shot(page, "evaluate-thanks")
    row = await hall.server.pool.fetchrow("SELECT * FROM evaluations")
    assert (row["ticket_id"], row["window_id"], row["staff_id"], row["rating"]) == (
        "20261124-A001", "W1", "zhang", 5)
    assert (row["device_id"], row["via"]) == ("eval-w1", "device")
    assert "热情周到" in row["reasons"] and "办事高效" in row["reasons"]
    await expect(page.locator("#screen")).to_have_attribute("data-view", "idle", timeout=4000)
    no_page_errors(hall)


async def test_an_unsatisfied_rating_offers_the_complaint_reasons(
    browser: Browser, hall: LiveHall,
) -> None:
    await serving_a001(hall)
    page = await terminal(browser, hall)
    await ask_for_rating(hall)
    await page.locator('[data-rating="2"]').click()
    await expect(page.locator(".reasons-title")).to_have_text("您不满意的是（可多选）")
    await page.locator('[data-reason="bad_2"]').click()
    await shot(page, "evaluate-unsatisfied")
    await page.locator("#submit").click()
    await expect(page.locator(".thanks-title")).to_be_visible()
    row = await hall.server.pool.fetchrow("SELECT rating, reasons FROM evaluations")
    assert row["rating"] == 2 and "等候时间长" in row["reasons"]
    no_page_errors(hall)


async def test_the_terminal_switches_to_english(browser: Browser, hall: LiveHall) -> None:
    await serving_a001(hall)
    page = await terminal(browser, hall)
    await page.locator("#language").click()
    await expect(page.locator(".idle-title")).to_have_text("Tell us how we did")
    await ask_for_rating(hall)
    await expect(page.locator('[data-rating="4"] .rating-label')).to_have_text("Satisfied")
    await expect(page.locator("#ticket-number")).to_have_text("Ticket A001")
    await shot(page, "evaluate-english")
    no_page_errors(hall)
