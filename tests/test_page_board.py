"""The hall board (D13, D8) in a real Chromium: calls appear, flash and are spoken, the
recent list and the waiting counts follow the hall, notices run as a ticker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

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

RECORD_SPEECH = """
window.__spoken = [];
const fake = {
  speaking: false, pending: false, paused: false,
  speak(u) { window.__spoken.push({ text: u.text, lang: u.lang });
             setTimeout(() => u.onend && u.onend(new Event("end")), 20); },
  cancel() {}, pause() {}, resume() {}, getVoices() { return []; },
  addEventListener() {}, removeEventListener() {},
};
Object.defineProperty(window, "speechSynthesis", { value: fake, configurable: true });
"""


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, HALL) as started:
        yield started


async def board(browser: Browser, hall: LiveHall, path: str = "/ui/board/",
                speech: bool = True) -> Page:
    width, height = BOARD
    if not speech:
        return await open_page(browser, hall, path, BOARD)
    context = await browser.new_context(viewport={"width": width, "height": height})
    await context.add_init_script(RECORD_SPEECH)
    page = await context.new_page()
    page.on("pageerror", lambda error: hall.problems.append(f"{path}: {error}"))
    page.on("console", lambda message: hall.problems.append(f"{path}: console: {message.text}")
            if message.type == "error" else None)
    await page.goto(hall.url(path))
    await expect(page.locator("#hall-name")).to_have_text("测试大厅")
    return page


async def spoken(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await page.evaluate("window.__spoken")
    return result


async def wait_spoken(page: Page, count: int) -> list[dict[str, Any]]:
    await page.wait_for_function(f"window.__spoken.length >= {count}")
    return await spoken(page)


async def manager_post(hall: LiveHall, path: str, body: dict[str, Any]) -> Any:
    async with aiohttp.ClientSession() as http:
        login = await http.post(hall.url("/api/v1/auth/login"),
                                json={"staff_id": "boss", "password": PASSWORD})
        token = (await login.json())["token"]
        answer = await http.post(hall.url(f"/api/v1{path}"), json=body,
                                 headers={"Authorization": f"Bearer {token}"})
        assert answer.status == 201, await answer.text()
        return await answer.json()


async def test_a_call_appears_big_with_its_window_and_is_spoken_in_mandarin(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W4", "zhang")
    await runtime.execute("issue", "house", Source.WALK_IN)
    page = await board(browser, hall)
    await expect(page.locator("#now .empty")).to_have_text("暂无呼叫")
    await runtime.execute("call_next", "W4")
    first = page.locator("#now .call.first")
    await expect(first.locator(".number")).to_have_text("C001")
    await expect(first.locator(".where b")).to_have_text("4号窗口")
    await expect(first).to_have_class("call first flash")
    assert await wait_spoken(page, 1) == [{"text": "请C001号到4号窗口办理", "lang": "zh-CN"}]
    no_page_errors(hall)


async def test_a_recall_is_spoken_again(browser: Browser, hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W4", "zhang")
    await runtime.execute("issue", "house", Source.WALK_IN)
    page = await board(browser, hall)
    await runtime.execute("call_next", "W4")
    await wait_spoken(page, 1)
    await runtime.execute("recall", "W4")
    said = await wait_spoken(page, 2)
    assert [s["text"] for s in said] == ["请C001号到4号窗口办理"] * 2
    await expect(page.locator("#now .call.first .recall-tag")).to_have_text("再次呼叫")
    no_page_errors(hall)


async def test_calls_in_a_burst_are_spoken_one_after_another_and_in_english_too(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("login", "W3", "wang")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await runtime.execute("issue", "tax", Source.WALK_IN)
    page = await board(browser, hall, "/ui/board/?lang=en")
    await expect(page.locator(".waiting h2")).to_have_text("Waiting")
    await runtime.execute("call_next", "W1")
    await runtime.execute("call_next", "W3")
    said = await wait_spoken(page, 4)
    assert said == [
        {"text": "请A001号到1号窗口办理", "lang": "zh-CN"},
        {"text": "Number A001, please go to window 1", "lang": "en-US"},
        {"text": "请B001号到3号窗口办理", "lang": "zh-CN"},
        {"text": "Number B001, please go to window 3", "lang": "en-US"},
    ]
    no_page_errors(hall)


async def test_earlier_calls_move_to_the_recent_list_and_waiting_counts_follow(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("login", "W2", "wang")
    for _ in range(4):
        await runtime.execute("issue", "biz", Source.WALK_IN)
    page = await board(browser, hall)
    biz = page.locator('[data-service="biz"] .count')
    await expect(biz).to_have_text("4人等候")
    await runtime.execute("call_next", "W1")
    await runtime.execute("call_next", "W2")
    await expect(page.locator("#now .call .number")).to_have_text(["A002", "A001"])
    await expect(biz).to_have_text("2人等候")
    await runtime.execute("finish", "W1")
    await runtime.execute("call_next", "W1")
    await expect(page.locator("#now .call .number")).to_have_text(["A003", "A002"])
    await expect(page.locator("#recent li .number")).to_have_text(["A001"])
    await expect(page.locator("#recent li .win")).to_have_text(["1号窗口"])
    await runtime.execute("issue", "tax", Source.WALK_IN)
    await expect(page.locator('[data-service="tax"] .count')).to_have_text("1人等候")
    no_page_errors(hall)


async def test_an_urgent_notice_runs_in_the_ticker(browser: Browser, hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("login", "W4", "wang")
    page = await board(browser, hall)
    await expect(page.locator("#ticker")).to_be_hidden()
    notice = await manager_post(hall, "/signage/notices", {
        "text": "系统升级，10:30 前暂停不动产登记业务", "level": "urgent", "minutes": 30})
    ticker = page.locator(f'#ticker [data-notice="{notice["id"]}"]')
    await expect(ticker).to_have_text("系统升级，10:30 前暂停不动产登记业务")
    await expect(page.locator("#ticker")).to_be_visible()
    for service in ("biz", "biz", "biz", "tax", "house", "house"):
        await runtime.execute("issue", service, Source.WALK_IN)
    await runtime.execute("call_next", "W1")
    await runtime.execute("call_next", "W4")
    await runtime.execute("finish", "W1")
    await runtime.execute("call_next", "W1")
    await runtime.execute("finish", "W1")
    await runtime.execute("call_next", "W1")
    await expect(page.locator("#now .call.first .number")).to_have_text("A003")
    await expect(page.locator("#recent li")).to_have_count(2)
    await page.wait_for_timeout(3500)  # let the flash end for the screenshot
    await shot(page, "board-calls")
    no_page_errors(hall)


async def test_a_reloaded_board_without_voices_shows_the_calls_before_it(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await runtime.execute("call_next", "W1")
    await runtime.execute("finish", "W1")
    await runtime.execute("call_next", "W1")
    page = await board(browser, hall, speech=False)
    await expect(page.locator("#now .call .number")).to_have_text(["A002"])
    await expect(page.locator("#recent li .number")).to_have_text(["A001"])
    await runtime.execute("recall", "W1")
    await expect(page.locator("#now .call.first .recall-tag")).to_be_visible()
    spoken_log = await page.evaluate("window.boardAnnouncer.spoken")
    assert spoken_log == [{"text": "请A002号到1号窗口办理", "lang": "zh-CN"}]
    no_page_errors(hall)


async def test_a_floor_board_shows_only_that_floors_calls_and_queues(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("login", "W5A", "wang")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await runtime.execute("issue", "fund", Source.WALK_IN)
    page = await board(browser, hall, "/ui/board/?floor=2")
    await expect(page.locator("#scope")).to_have_text("2楼")
    await expect(page.locator("#services .service")).to_have_count(1)
    await expect(page.locator('[data-service="fund"] .count')).to_have_text("1人等候")
    await runtime.execute("call_next", "W1")
    await runtime.execute("call_next", "W5A")
    await expect(page.locator("#now .call .number")).to_have_text(["D001"])
    assert [s["text"] for s in await wait_spoken(page, 1)] == ["请D001号到5号窗口A办理"]
    no_page_errors(hall)


async def test_the_calls_api_lists_todays_calls_newest_first_by_scope(hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("login", "W5A", "wang")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await runtime.execute("issue", "fund", Source.WALK_IN)
    await runtime.execute("call_next", "W1")
    hall.clock.moment = hall.clock.moment.replace(minute=5)
    await runtime.execute("call_next", "W5A")
    hall.clock.moment = hall.clock.moment.replace(minute=6)
    await runtime.execute("recall", "W1")
    async with aiohttp.ClientSession() as http:
        every = await (await http.get(hall.url("/api/v1/hall/calls"))).json()
        floor = await (await http.get(hall.url("/api/v1/hall/calls?floor=2"))).json()
        scope = await (await http.get(hall.url("/api/v1/hall/scope?area=F1B"))).json()
        unknown = await http.get(hall.url("/api/v1/hall/calls?area=nowhere"))
    assert [(c["number"], c["window"], c["recall"]) for c in every] == [
        ("A001", "W1", True), ("D001", "W5A", False), ("A001", "W1", False)]
    assert [c["number"] for c in floor] == ["D001"]
    assert scope == {"areas": ["F1B"], "windows": ["W3", "W4"],
                     "services": ["tax", "house", "morning"]}
    assert (unknown.status, (await unknown.json())["code"]) == (404, "unknown_area")
