"""The kiosk page (Q1, Q2, Q3, Q4, Q14) in a real Chromium on a portrait 1080×1920
screen, with the kiosk's device token: categories → service → how → the ticket; the
refusals in Chinese; paper out sends the citizen to a kiosk that prints. And the REST
ticket of a registered kiosk printed through its edge agent on a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page, expect

from devices.topics import DeviceKind
from hall.config import DeviceEntry, TicketText
from hall.http import build_app
from queueing.tickets import Source
from tests.browser_kit import KIOSK as PORTRAIT
from tests.browser_kit import LiveHall, live_hall, no_page_errors, open_page, shot
from tests.bus_kit import hall_on_bus
from tests.mqtt_kit import Mosquitto, mqtt_client, next_message
from tests.test_api_hall import HALL, KIOSK, bearer
from tests.test_appointments import ZHANG_SAN, appointments, at
from tests.test_priority import ELDERLY, GROUPS

TEXTS = {
    "biz": TicketText("请到一楼A区 1-2 号窗口",
                      ("营业执照申请书", "全体股东身份证原件", "公司章程"),
                      "请留意叫号，过号请重新取号"),
}
KIOSK_HALL = replace(HALL, tickets=TEXTS, priority_groups=GROUPS, appointments=appointments())
PRINTING_HALL = replace(KIOSK_HALL, devices=(
    DeviceEntry("kiosk-1", DeviceKind.KIOSK, "一楼自助取号机", area="F1A"),
    DeviceEntry("kiosk-2", DeviceKind.KIOSK, "二楼自助取号机", area="F2A"),
))
PAGE = f"/ui/kiosk/?token={KIOSK}"
REFUSED = ("status of 409", "status of 403", "status of 404")


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, KIOSK_HALL) as started:
        yield started


async def kiosk(browser: Browser, hall: LiveHall, query: str = "") -> Page:
    page = await open_page(browser, hall, PAGE + query, PORTRAIT)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


async def keys(page: Page, text: str) -> None:
    for key in text:
        await page.locator(f'.keypad [data-key="{key}"]').click()


async def choose(page: Page, category: str, service: str) -> None:
    await page.locator(f'[data-category="{category}"]').click()
    await page.locator(f'[data-service="{service}"]').click()


async def test_a_walk_in_ticket_shows_the_number_the_queue_and_where_to_go(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    page = await kiosk(browser, hall)
    await expect(page.locator('[data-category="商事登记"]')).to_contain_text("1 人等候")
    await shot(page, "kiosk-categories")
    await page.locator('[data-category="商事登记"]').click()
    await expect(page.locator('[data-service="biz"]')).to_contain_text("等候 1 人 · 预计 10 分钟")
    await shot(page, "kiosk-services")
    await page.locator('[data-service="biz"]').click()
    await shot(page, "kiosk-how")
    await page.locator('[data-way="walkin"]').click()
    await expect(page.locator("#ticket-number")).to_have_text("A002")
    await expect(page.locator("#people-ahead .fact-value")).to_have_text("1")
    await expect(page.locator("#estimate .fact-value")).to_have_text("10")
    await expect(page.locator(".block-direction")).to_contain_text("请到一楼A区 1-2 号窗口")
    await expect(page.locator(".materials li")).to_have_count(3)
    await expect(page.locator(".take-text")).to_have_text("请取走号票")
    await shot(page, "kiosk-ticket")
    assert runtime.engine.ticket("20261124-A002").source is Source.WALK_IN
    no_page_errors(hall)


async def test_a_phone_ticket_is_typed_on_the_on_screen_keypad(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W3", "wang")
    page = await kiosk(browser, hall)
    await choose(page, "税务服务", "tax")
    await page.locator('[data-way="phone"]').click()
    await keys(page, "1381234567")
    await expect(page.locator(".go")).to_be_disabled()
    await keys(page, "8")
    await expect(page.locator("#phone-number")).to_have_text("138 1234 5678")
    await shot(page, "kiosk-phone")
    await page.locator(".go").click()
    await expect(page.locator("#ticket-number")).to_have_text("B001")
    await expect(page.locator(".block-direction")).to_contain_text("一楼B区 3号窗口")
    ticket = runtime.engine.ticket("20261124-B001")
    assert ticket.source is Source.PHONE
    citizen = await hall.server.citizens.load(int(ticket.citizen_ref or 0))
    assert citizen is not None and citizen.phone == "13812345678"
    no_page_errors(hall)


async def test_an_id_card_from_the_reader_takes_the_ticket_at_once(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    page = await kiosk(browser, hall)
    await choose(page, "商事登记", "biz")
    await page.locator('[data-way="idcard"]').click()
    await expect(page.locator(".card-text")).to_have_text("请将身份证放在读卡区")
    await shot(page, "kiosk-idcard")
    await page.evaluate("""identity => window.dispatchEvent(
        new CustomEvent('smarthall:identity', {detail: identity}))""", ZHANG_SAN)
    await expect(page.locator("#ticket-number")).to_have_text("A001")
    ticket = runtime.engine.ticket("20261124-A001")
    citizen = await hall.server.citizens.load(int(ticket.citizen_ref or 0))
    assert ticket.source is Source.ID_CARD
    assert citizen is not None and citizen.id_number == ZHANG_SAN["id_number"]
    no_page_errors(hall)


async def test_an_id_number_typed_in_takes_an_id_card_ticket(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    page = await kiosk(browser, hall)
    await choose(page, "商事登记", "biz")
    await page.locator('[data-way="idcard"]').click()
    await page.locator("#name").fill("张三")
    await keys(page, ZHANG_SAN["id_number"])
    await page.locator(".go").click()
    await expect(page.locator("#ticket-number")).to_have_text("A001")
    assert runtime.engine.ticket("20261124-A001").source is Source.ID_CARD
    no_page_errors(hall)


async def priority_ticket(page: Page, password: str) -> None:
    await choose(page, "商事登记", "biz")
    await page.locator('[data-way="priority"]').click()
    await page.locator('[data-group="elderly"]').click()
    await keys(page, password)
    await expect(page.locator(".password-display")).to_have_text("●" * len(password))
    await shot(page, "kiosk-priority")
    await page.locator(".go").click()


async def test_a_priority_ticket_with_the_right_password(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    page = await kiosk(browser, hall)
    await priority_ticket(page, ELDERLY)
    await expect(page.locator("#ticket-number")).to_have_text("A002")
    ticket = runtime.engine.ticket("20261124-A002")
    assert (ticket.source, ticket.priority_group) == (Source.PRIORITY, "elderly")
    no_page_errors(hall)


async def test_a_wrong_priority_password_is_refused_and_says_so(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    page = await kiosk(browser, hall)
    await priority_ticket(page, "123456")
    await expect(page.locator("#refusal")).to_have_text("优先取号密码不正确，请工作人员重新输入")
    await shot(page, "kiosk-refused-password")
    assert runtime.engine.issued_today("biz") == 0
    await page.locator(".refused .secondary").click()
    await expect(page.locator('[data-group="elderly"]')).to_be_visible()
    no_page_errors(hall, allowed=REFUSED)


async def book(hall: LiveHall) -> str:
    """Zhang San books biz at 10:00 on the mobile page, through the live hall's port."""
    async with aiohttp.ClientSession() as client:
        response = await client.post(hall.url("/api/v1/bookings"), json={
            "service": "biz", "slot_start": at(10).isoformat(), "citizen": ZHANG_SAN,
            "channel": "mobile"})
        body = await response.json()
        assert response.status == 201, body
        return str(body["code"])


async def test_an_appointment_checks_in_by_its_code(browser: Browser, hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W2", "wang")
    code = await book(hall)
    page = await kiosk(browser, hall)
    await page.locator('[data-action="appointment"]').click()
    await keys(page, code)
    await expect(page.locator("#appointment-code")).to_have_text(code)
    await shot(page, "kiosk-appointment")
    await page.locator(".go").click()
    await expect(page.locator(".ticket-label")).to_have_text("预约签到成功")
    await expect(page.locator("#ticket-number")).to_have_text("A001")
    ticket = runtime.engine.ticket("20261124-A001")
    assert (ticket.source, ticket.appointment_slot) == (Source.APPOINTMENT, at(10))
    no_page_errors(hall)


async def test_an_appointment_checks_in_by_id_card(browser: Browser, hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W2", "wang")
    await book(hall)
    page = await kiosk(browser, hall)
    await page.locator('[data-action="appointment"]').click()
    await page.locator('[data-action="appointment-card"]').click()
    await page.evaluate("""identity => window.postMessage(
        {type: 'smarthall.identity', identity}, '*')""", ZHANG_SAN)
    await expect(page.locator(".ticket-label")).to_have_text("预约签到成功")
    assert runtime.engine.ticket("20261124-A001").source is Source.APPOINTMENT
    no_page_errors(hall)


async def test_closed_services_are_greyed_with_the_reason(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W4", "zhang")
    for _ in range(3):
        await runtime.execute("issue", "house", Source.WALK_IN)
    page = await kiosk(browser, hall)
    await page.locator('[data-category="不动产登记"]').click()
    house = page.locator('[data-service="house"]')
    await expect(house).to_have_class("service closed")
    await expect(house.locator(".service-meta")).to_have_text("今日号源已发完")
    await shot(page, "kiosk-closed-quota")
    await house.click()
    await expect(page.locator("#refusal")).to_have_text(
        "今日该事项号源已发完，请改日办理或网上预约")
    await page.locator(".refused .primary").click()
    await expect(page.locator('[data-category="公积金"]')).to_have_class("tile category closed")
    await page.locator('[data-category="公积金"]').click()
    await expect(page.locator('[data-service="fund"] .service-meta')).to_have_text("暂无窗口办理")
    hall.clock.moment = at(13, 40)
    await page.reload()
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    await page.locator('[data-category="公安"]').click()
    morning = page.locator('[data-service="morning"] .service-meta')
    await expect(morning).to_have_text("不在办理时间")
    no_page_errors(hall)


async def test_a_kiosk_out_of_paper_sends_the_citizen_to_one_that_prints(
    browser: Browser, pool: asyncpg.Pool,
) -> None:
    async with live_hall(pool, PRINTING_HALL) as hall:
        runtime = hall.server.runtime
        await runtime.execute("login", "W1", "zhang")
        now = hall.clock.now()
        hall.server.devices.came_online("kiosk-2", DeviceKind.KIOSK, "1.0", "1", now)
        hall.server.devices.health("kiosk-1", "out", "closed", (), now)
        page = await kiosk(browser, hall)
        where = "本机打印纸已用完，请到二楼自助取号机取号"
        await expect(page.locator("#printer-note")).to_have_text(where)
        await expect(page.locator("#kiosk-name")).to_have_text("一楼自助取号机")
        await choose(page, "商事登记", "biz")
        await page.locator('[data-way="walkin"]').click()
        await expect(page.locator("#refusal")).to_have_text(where)
        await shot(page, "kiosk-paper-out")
        assert runtime.engine.issued_today("biz") == 0
        no_page_errors(hall, allowed=REFUSED)


async def test_the_kiosk_switches_to_english(browser: Browser, hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    page = await kiosk(browser, hall)
    await page.locator("#language").click()
    await expect(page.locator(".prompt")).to_have_text("Choose a category")
    await expect(page.locator('[data-action="appointment"] .tile-title')).to_have_text(
        "Appointment check-in")
    await choose(page, "商事登记", "biz")
    await expect(page.locator('[data-way="walkin"] .tile-title')).to_have_text("Just a ticket")
    await page.locator('[data-way="walkin"]').click()
    await expect(page.locator(".take-text")).to_have_text("Please take your ticket")
    await shot(page, "kiosk-english-ticket")
    await page.locator("#language").click()
    await expect(page.locator(".take-text")).to_have_text("请取走号票")
    no_page_errors(hall)


async def test_an_idle_kiosk_returns_to_the_start(browser: Browser, hall: LiveHall) -> None:
    page = await kiosk(browser, hall, "&idle=1&ticket=2")
    await page.locator('[data-category="商事登记"]').click()
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "services")
    await expect(page.locator("#screen")).to_have_attribute("data-screen", "home", timeout=4000)
    no_page_errors(hall)


# ---------------------------------------------------------------- printing over the bus


async def test_a_registered_kiosks_rest_ticket_is_printed_by_its_agent(
    pool: asyncpg.Pool, mosquitto: Mosquitto,
) -> None:
    async with hall_on_bus(pool, mosquitto, PRINTING_HALL) as bus, \
            mqtt_client(mosquitto, "kiosk-1") as agent, \
            TestClient(TestServer(build_app(bus.server))) as client:
        await agent.subscribe("hall/test/kiosk-1/cmd", qos=1)
        await bus.server.runtime.execute("login", "W1", "zhang")
        response = await client.post("/api/v1/tickets", json={"service": "biz"},
                                     headers=bearer(KIOSK))
        assert response.status == 201, await response.text()
        job: dict[str, Any] = json.loads(
            (await asyncio.wait_for(next_message(agent), 5)).payload)  # type: ignore[arg-type]
        assert (job["type"], job["id"]) == ("printer.print", "rest-20261124-A001")
        assert job["ticket"]["number"] == "A001"
        assert job["ticket"]["direction"] == "请到一楼A区 1-2 号窗口"
        assert job["ticket"]["qr"] == "20261124-A001"
