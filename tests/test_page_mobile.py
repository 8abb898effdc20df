"""The mobile page (M1, Q1, Q6) in a real Chromium on a phone-sized screen: a citizen
takes a ticket remotely and follows it live until called, books, changes and cancels
an appointment, queries a case and reads a guide, without logging in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from hall.backend import Progress
from hall.guides import GuideStore
from hall.pii import Identity
from queueing.tickets import Source
from tests.browser_kit import PHONE, LiveHall, live_hall, no_page_errors, open_page, shot
from tests.engine_kit import OPENING
from tests.test_appointments import BOOKING_HALL, at

CITIZEN_PHONE = "13812345678"
REFUSED = "the server responded with a status of"
"""Chromium logs a refused request (4xx) as a console error; the tests provoke some."""


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, BOOKING_HALL) as started:
        yield started


async def phone(browser: Browser, hall: LiveHall, view: str = "") -> Page:
    page = await open_page(browser, hall, f"/ui/mobile/{view}", PHONE, has_touch=True,
                           is_mobile=True)
    await expect(page.locator("#title")).not_to_have_text("掌上大厅")
    return page


async def take_remote_ticket(page: Page) -> None:
    await page.locator('.tile[data-go="take"]').click()
    await page.locator('.choice[data-service="biz"]').click()
    await page.locator("#take-phone").fill(CITIZEN_PHONE)
    await page.locator("#take-submit").click()


async def test_the_home_page_shows_the_queues_and_the_ways_in(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    for _ in range(3):
        await runtime.execute("issue", "biz", Source.WALK_IN)
    page = await phone(browser, hall)
    await expect(page.locator("#title")).to_have_text("测试大厅")
    await expect(page.locator(".tile")).to_have_count(6)
    biz = page.locator('.service[data-service="biz"]')
    await expect(biz.locator(".waiting")).to_have_text("等候 3 人")
    await expect(biz.locator(".estimate")).to_have_text("约 30 分钟")
    await expect(page.locator('.service[data-service="fund"]')).to_contain_text("暂停取号")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await expect(biz.locator(".waiting")).to_have_text("等候 4 人")
    await shot(page, "mobile-home")
    await page.locator("#lang").click()
    await expect(page.locator('.tile[data-go="take"] .tile-name')).to_have_text("Take ticket")
    await expect(biz.locator(".waiting")).to_have_text("4 waiting")
    await shot(page, "mobile-home-en")
    no_page_errors(hall)


async def test_a_live_update_of_the_home_page_keeps_the_tiles_being_tapped(
    browser: Browser, hall: LiveHall,
) -> None:
    """A tile swapped for a new one between touch down and touch up gets no tap."""
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    page = await phone(browser, hall)
    tile = await page.locator('.tile[data-go="guides"]').element_handle()
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await expect(page.locator('.service[data-service="biz"] .waiting')).to_have_text("等候 1 人")
    assert await tile.evaluate("node => node.isConnected")
    await tile.click()
    await expect(page.locator("#title")).to_have_text("办事指南")
    no_page_errors(hall)


async def test_a_remote_ticket_shows_its_number_and_place(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W2", "wang")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await runtime.execute("issue", "biz", Source.WALK_IN)
    page = await phone(browser, hall)
    await take_remote_ticket(page)
    card = page.locator(".ticket-card")
    await expect(card.locator(".ticket-number")).to_have_text("A003")
    await expect(card.locator(".ahead")).to_have_text("2 人")
    await expect(card.locator(".estimate")).to_have_text("约 20 分钟")
    [ticket] = [t for t in runtime.engine.tickets() if t.number == "A003"]
    assert ticket.source is Source.MOBILE
    await page.reload()
    await expect(page.locator(".ticket-card .ticket-number")).to_have_text("A003")
    await runtime.execute("call_next", "W2")
    await expect(card.locator(".ahead")).to_have_text("1 人")
    await shot(page, "mobile-ticket-waiting")
    no_page_errors(hall)


async def test_the_ticket_turns_called_live_and_the_phone_vibrates(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W2", "wang")
    page = await phone(browser, hall)
    await page.evaluate("""() => {
        window.vibrated = [];
        navigator.vibrate = (pattern) => { window.vibrated.push(pattern); return true; };
    }""")
    await take_remote_ticket(page)
    await expect(page.locator(".ticket-card .pill")).to_have_text("等候中")
    await runtime.execute("call_next", "W2")
    await expect(page.locator(".called-box .go")).to_have_text("请到2号窗口办理")
    await page.wait_for_function("window.vibrated.length === 1", timeout=5000)
    await shot(page, "mobile-ticket-called")
    await runtime.execute("recall", "W2")
    await page.wait_for_function("window.vibrated.length === 2", timeout=5000)
    await page.locator("#back").click()
    await expect(page.locator("#called")).to_contain_text("请到2号窗口办理")
    await expect(page.locator("#mine-strip")).to_contain_text("A001")
    no_page_errors(hall)


async def test_a_phone_over_its_daily_limit_is_refused_in_chinese(
    browser: Browser, hall: LiveHall,
) -> None:
    await hall.server.runtime.execute("login", "W2", "wang")
    for _ in range(3):
        assert await hall.server.appointments.remote.take(CITIZEN_PHONE, OPENING.date())
    page = await phone(browser, hall)
    await take_remote_ticket(page)
    await expect(page.locator("#take-error")).to_have_text(
        "该手机号今天的远程取号次数已用完，请明天再试，或到大厅取号机取号")
    assert not list(hall.server.runtime.engine.tickets())
    await shot(page, "mobile-take-refused")
    no_page_errors(hall, allowed=(f"{REFUSED} 429",))


async def test_a_citizen_books_a_slot_changes_it_and_cancels_it(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await phone(browser, hall)
    await page.locator('.tile[data-go="book"]').click()
    await page.locator('.choice[data-service="biz"]').click()
    await expect(page.locator(".day.chosen .day-date")).to_have_text("11/24")
    ten = page.locator(".slot", has_text="10:00-10:30")
    await expect(ten.locator(".slot-left")).to_have_text("余 2")
    await expect(page.locator(".slot", has_text="09:00-09:30")).to_be_disabled()
    await ten.click()
    await page.locator("#book-name").fill("张三")
    await page.locator("#book-phone").fill(CITIZEN_PHONE)
    await page.locator("#book-submit").click()
    code_box = page.locator("#booking-code")
    await expect(code_box).to_have_text(re.compile(r"^[A-Z0-9]{10}$"))
    code = await code_box.text_content()
    assert code is not None
    booking = await hall.server.appointments.get(code)
    assert booking is not None and booking.slot_start == at(10)
    await shot(page, "mobile-booking-code")

    await page.get_by_role("link", name="查看我的预约").click()
    card = page.locator(f'.booking-card[data-code="{code}"]')
    await expect(card.locator(".slot-when")).to_have_text("11月24日 周二 10:00-10:30")
    await expect(card).to_contain_text("张*")
    await card.locator("button.change").click()
    await expect(page.locator(".slot", has_text="10:00-10:30")).to_contain_text("当前时段")
    await page.locator(".slot", has_text="11:00-11:30").click()
    await expect(page.locator("#booking-notice")).to_have_text("已改约到 11月24日 周二 11:00-11:30")
    booking = await hall.server.appointments.get(code)
    assert booking is not None and booking.slot_start == at(11)
    await shot(page, "mobile-my-booking")

    await card.locator("button.cancel").click()
    await card.get_by_role("button", name="确定取消").click()
    await expect(card.locator(".pill")).to_have_text("已取消")
    booking = await hall.server.appointments.get(code)
    assert booking is not None and booking.status == "cancelled"
    no_page_errors(hall)


async def test_a_full_slot_is_shown_full(browser: Browser, hall: LiveHall) -> None:
    for n in range(2):
        await hall.server.appointments.book(
            "biz", at(10), Identity(f"市民{n}", None, f"1390000000{n}"), "portal", OPENING)
    page = await phone(browser, hall, "#/book")
    await page.locator('.choice[data-service="biz"]').click()
    full = page.locator(".slot", has_text="10:00-10:30")
    await expect(full.locator(".slot-left")).to_have_text("已约满")
    await expect(full).to_be_disabled()
    await expect(page.locator(".slot", has_text="10:30-11:00")).to_be_enabled()
    await expect(page.locator(".slot", has_text="09:00-09:30")).to_contain_text("已截止")
    await shot(page, "mobile-booking-slots")
    no_page_errors(hall)


async def test_a_case_query_shows_the_progress_steps(browser: Browser, hall: LiveHall) -> None:
    backend = hall.server.backend
    steps = [("accepted", "已受理，请耐心等候"), ("in_review", "材料审核中"),
             ("done", "已办结，请到3号窗口领取证照")]
    for minutes, (status, message) in enumerate(steps):
        await backend.record_progress(Progress(
            "JY2026-0001", None, status, message, OPENING.replace(minute=minutes * 20)))
    page = await phone(browser, hall)
    await page.locator('.tile[data-go="case"]').click()
    await page.locator("#case-code").fill("JY2026-0001")
    await page.get_by_role("button", name="查询").click()
    items = page.locator("#case-steps .step")
    await expect(items.locator("strong")).to_have_text(["已受理", "审核中", "已办结"])
    await expect(page.locator(".step.latest")).to_contain_text("已办结，请到3号窗口领取证照")
    await shot(page, "mobile-case-progress")
    await page.locator("#case-code").fill("NOPE")
    await page.get_by_role("button", name="查询").click()
    await expect(page.locator("#case-error")).to_have_text("没有找到这个办件编号")
    no_page_errors(hall, allowed=(f"{REFUSED} 404",))


async def test_guides_are_listed_by_category_with_their_materials(
    browser: Browser, hall: LiveHall,
) -> None:
    spec = {"summary": "新办企业的设立登记。", "steps": ["网上预审", "窗口受理", "领取执照"],
            "materials": [{"name": "公司章程", "note": "全体股东签字"}], "fee": "免费",
            "time_limit": "1 个工作日", "basis": ""}
    async with hall.server.pool.acquire() as connection:
        await GuideStore(hall.server.pool, "test").put_guide(connection, "biz", spec, "boss")
    page = await phone(browser, hall)
    await page.locator('.tile[data-go="guides"]').click()
    await expect(page.locator(".tab")).to_have_count(5)
    await expect(page.locator(".tab.chosen")).to_have_text("商事登记")
    await page.locator(".tab", has_text="税务服务").click()
    await expect(page.locator("#guide-list a > span:first-child")).to_have_text(["发票申领"])
    await page.locator(".tab", has_text="商事登记").click()
    await page.locator('#guide-list a[data-service="biz"]').click()
    await expect(page.locator("#title")).to_have_text("企业设立登记")
    await expect(page.locator("#guide-materials li")).to_have_text(["公司章程（全体股东签字）"])
    await expect(page.locator(".steps li")).to_have_count(3)
    await expect(page.locator(".guide-block", has_text="办理地点")).to_contain_text("1号窗口")
    await shot(page, "mobile-guide")
    no_page_errors(hall)


async def test_the_page_learns_the_bookable_services_and_the_halls_zone(hall: LiveHall) -> None:
    async with aiohttp.ClientSession() as http, \
            http.get(hall.url("/api/v1/appointment-services")) as response:
        body = await response.json()
    assert response.status == 200
    assert (body["timezone"], body["today"], body["remote_tickets_per_phone"]) == (
        "Asia/Shanghai", "2026-11-24", 3)
    assert body["services"] == [{
        "service": "biz", "name": "企业设立登记", "category": "商事登记", "slot_minutes": 30,
        "capacity": 2, "days_ahead": 7, "cutoff_minutes": 30.0}]
