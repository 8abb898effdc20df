"""The virtual caller (Q8, D9, D12) in a real Chromium against a real hall: a clerk logs
in, opens a window and does everything a hardware call terminal does, and the hall's
state follows; refusals are shown in words. Plus the small API the page reads
(hall/caller_page_routes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from hall.pii import Identity
from queueing.tickets import Source
from tests.browser_kit import (
    WINDOW_PC,
    LiveHall,
    live_hall,
    no_page_errors,
    open_page,
    shot,
)
from tests.test_api_hall import HALL, PASSWORD

REFUSED = ("409",)
"""A refused request shows in Chromium's console as a failed resource load."""


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, HALL) as started:
        yield started


async def log_in(page: Page, staff: str = "zhang") -> None:
    await page.locator("#staff-id").fill(staff)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#login-button").click()


async def open_caller(browser: Browser, hall: LiveHall, window: str = "W1",
                      staff: str = "zhang") -> Page:
    page = await open_page(browser, hall, f"/ui/caller/?window={window}", WINDOW_PC)
    await log_in(page, staff)
    await page.locator(f'.window-card[data-window="{window}"]').click()
    await expect(page.locator("#state-chip")).to_have_text("空闲")
    return page


def button(page: Page, action: str) -> Any:
    return page.locator(f'#buttons [data-action="{action}"]')


async def press_key(page: Page, action: str) -> None:
    """The action's function key, once its button is lit, as a clerk presses it: a key
    pressed while the page still waits for the last action's answer is ignored."""
    target = button(page, action)
    await expect(target).to_be_enabled()
    await page.keyboard.press(str(await target.get_attribute("data-key")))


async def issue(hall: LiveHall, service: str = "biz", identity: Identity | None = None) -> str:
    server = hall.server
    citizen = None if identity is None else str(await server.citizens.save(identity))
    source = Source.WALK_IN if identity is None else Source.ID_CARD
    stored = await server.runtime.execute("issue", service, source, citizen_ref=citizen)
    ticket_id: str = stored[0].event.ticket_id  # type: ignore[attr-defined]
    return ticket_id


async def rest(hall: LiveHall, method: str, path: str, token: str | None = None,
               body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.request(
            method, hall.url(f"/api/v1{path}"), json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def staff_token(hall: LiveHall, staff: str) -> str:
    status, body = await rest(hall, "POST", "/auth/login",
                              body={"staff_id": staff, "password": PASSWORD})
    assert status == 200, body
    token: str = body["token"]
    return token


# ---------------------------------------------------------------- the page


async def test_staff_log_in_and_open_their_window(browser: Browser, hall: LiveHall) -> None:
    page = await open_page(browser, hall, "/ui/caller/?window=W1", WINDOW_PC)
    await expect(page.locator("#login-form")).to_be_visible()
    await shot(page, "caller-login")
    await log_in(page)
    card = page.locator('.window-card[data-window="W1"]')
    await expect(card).to_have_class("window-card state-not_logged_in wanted")
    await shot(page, "caller-pick")
    await card.click()
    await expect(page.locator("#state-chip")).to_have_text("空闲")
    await expect(page.locator("#window-name")).to_have_text("1号窗口")
    await expect(page.locator("#staff-name")).to_have_text("张伟")
    assert hall.server.runtime.engine.window("W1").staff == "zhang"
    await expect(button(page, "call_next")).to_be_enabled()
    await expect(button(page, "finish")).to_be_disabled()
    await expect(page.locator("#empty-detail")).to_have_text("目前无人等候")
    await issue(hall)
    await expect(page.locator("#count-waiting")).to_have_text("1")
    await expect(page.locator('#service-waiting [data-service="biz"]')).to_have_text(
        "企业设立登记：1 人等候")
    await shot(page, "caller-idle")
    no_page_errors(hall)


async def test_a_window_taken_by_someone_else_cannot_be_picked(
    browser: Browser, hall: LiveHall,
) -> None:
    await hall.server.runtime.execute("login", "W2", "wang")
    page = await open_page(browser, hall, "/ui/caller/?window=W2", WINDOW_PC)
    await log_in(page)
    card = page.locator('.window-card[data-window="W2"]')
    await expect(card).to_contain_text("王芳 已登录")
    await expect(card).to_be_disabled()
    no_page_errors(hall)


async def test_a_reload_goes_straight_back_to_the_desk(browser: Browser, hall: LiveHall) -> None:
    page = await open_caller(browser, hall)
    await page.reload()
    await expect(page.locator("#state-chip")).to_have_text("空闲")
    await page.locator("#window-logout").click()
    await expect(page.locator("#pick-view")).to_be_visible()
    assert hall.server.runtime.engine.window("W1").staff is None
    no_page_errors(hall)


async def test_a_logout_made_elsewhere_brings_back_the_picker(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await open_caller(browser, hall)
    await hall.server.runtime.execute("logout", "W1")
    await expect(page.locator("#pick-view")).to_be_visible()
    await expect(page.locator('.window-card[data-window="W1"]')).to_contain_text("登录此窗口")
    no_page_errors(hall)


async def test_call_next_shows_the_number_and_the_masked_citizen(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await open_caller(browser, hall)
    await issue(hall, identity=Identity("张三丰", "11010519491231002X", "13812345678"))
    await expect(page.locator("#count-waiting")).to_have_text("1")
    await press_key(page, "call_next")
    await expect(page.locator("#ticket-number")).to_have_text("A001")
    await expect(page.locator("#state-chip")).to_have_text("呼叫中")
    await expect(page.locator("#ticket-status")).to_have_text("正在呼叫")
    await expect(page.locator("#ticket-service")).to_have_text("企业设立登记")
    await expect(page.locator("#ticket-source")).to_have_text("身份证取号")
    await expect(page.locator("#citizen-name")).to_have_text("张*丰")
    await expect(page.locator("#citizen-id")).to_have_text("110105********002X")
    await expect(page.locator("#citizen-phone")).to_have_text("138****5678")
    await expect(page.locator("#ticket-nodes li")).to_have_count(2)
    await expect(page.locator("#ticket-nodes li").nth(1)).to_contain_text("叫号")
    await expect(page.locator("#notice")).to_have_text("已呼叫 A001")
    await expect(page.locator("#count-called")).to_have_text("1")
    await expect(button(page, "call_next")).to_be_disabled()
    await expect(button(page, "recall")).to_be_enabled()
    assert "张三丰" not in await page.content()
    await shot(page, "caller-calling")
    no_page_errors(hall)


async def test_recall_start_and_finish_move_the_state_and_the_buttons(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await open_caller(browser, hall)
    ticket_id = await issue(hall)
    await button(page, "call_next").click()
    await expect(page.locator("#ticket-number")).to_have_text("A001")
    await button(page, "recall").click()
    await expect(page.locator("#notice")).to_have_text("已重呼 A001")
    await expect(page.locator('#ticket-nodes li[data-kind="recalled"]')).to_have_count(1)
    await press_key(page, "start")
    await expect(page.locator("#state-chip")).to_have_text("办理中")
    await expect(page.locator("#ticket-status")).to_have_text("正在办理")
    await expect(button(page, "recall")).to_be_disabled()
    await expect(button(page, "skip")).to_be_disabled()
    await expect(button(page, "finish")).to_be_enabled()
    await expect(page.locator("#citizen-anonymous")).to_have_text("未登记身份（现场取号）")
    await expect(page.locator("#citizen-facts")).to_be_hidden()
    await shot(page, "caller-serving")
    await button(page, "finish").click()
    await expect(page.locator("#state-chip")).to_have_text("空闲")
    await expect(page.locator("#notice")).to_have_text("A001 已办结")
    await expect(page.locator("#count-finished")).to_have_text("1")
    await expect(button(page, "call_next")).to_be_enabled()
    assert hall.server.runtime.engine.ticket(ticket_id).status == "finished"
    no_page_errors(hall)


async def test_skip_marks_a_no_show(browser: Browser, hall: LiveHall) -> None:
    page = await open_caller(browser, hall)
    ticket_id = await issue(hall)
    await button(page, "call_next").click()
    await expect(page.locator("#ticket-number")).to_have_text("A001")
    await press_key(page, "skip")
    await expect(page.locator("#notice")).to_have_text("A001 已过号")
    await expect(page.locator("#state-chip")).to_have_text("空闲")
    await expect(page.locator("#count-skipped")).to_have_text("1")
    ticket = hall.server.runtime.engine.ticket(ticket_id)
    assert (ticket.status, ticket.skips) == ("waiting", 1)
    no_page_errors(hall)


async def test_hold_and_release_through_the_held_list(browser: Browser, hall: LiveHall) -> None:
    page = await open_caller(browser, hall)
    ticket_id = await issue(hall)
    await button(page, "call_next").click()
    await button(page, "start").click()
    await expect(page.locator("#state-chip")).to_have_text("办理中")
    await press_key(page, "hold")
    await expect(page.locator("#state-chip")).to_have_text("空闲")
    release = page.locator(f'#held-list [data-ticket="{ticket_id}"]')
    await expect(release).to_have_text("A001 回来了")
    await release.click()
    await expect(page.locator("#notice")).to_have_text("A001 已恢复排队")
    await expect(release).to_have_count(0)
    assert hall.server.runtime.engine.ticket(ticket_id).status == "waiting"
    no_page_errors(hall)


async def test_transfer_to_another_service_through_the_dialog(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await open_caller(browser, hall)
    ticket_id = await issue(hall)
    await button(page, "call_next").click()
    await expect(page.locator("#ticket-number")).to_have_text("A001")
    await press_key(page, "transfer")
    dialog = page.locator("#transfer-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#transfer-ticket")).to_have_text(
        "将 A001（企业设立登记）转往：")
    await page.locator("#transfer-service").select_option("tax")
    await shot(page, "caller-transfer-dialog")
    await page.locator("#transfer-ok").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#notice")).to_have_text("A001 已转移")
    await expect(page.locator("#state-chip")).to_have_text("空闲")
    await expect(page.locator("#count-transferred")).to_have_text("1")
    ticket = hall.server.runtime.engine.ticket(ticket_id)
    assert (ticket.service, ticket.status) == ("tax", "waiting")
    no_page_errors(hall)


async def test_a_transfer_the_hall_refuses_says_why_in_the_dialog(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await open_caller(browser, hall)
    await issue(hall)
    await button(page, "call_next").click()
    await button(page, "transfer").click()
    await page.locator('#transfer-form input[value="window"]').check()
    await page.locator("#transfer-window").select_option("W4")  # serves no biz
    await page.locator("#transfer-ok").click()
    await expect(page.locator("#transfer-error")).to_have_text("该窗口不办理此号码的业务")
    await expect(page.locator("#transfer-dialog")).to_be_visible()
    no_page_errors(hall, allowed=REFUSED)


async def test_pause_with_a_reason_and_a_message_then_resume(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await open_caller(browser, hall)
    await press_key(page, "pause")
    await expect(page.locator("#pause-dialog")).to_be_visible()
    await expect(page.locator("#pause-reasons .reason")).to_have_count(2)
    await page.locator('#pause-reasons input[value="lunch"]').check()
    await expect(page.locator("#pause-message")).to_have_value("午休，13:30 恢复办理")
    await page.locator("#pause-message").fill("午休，13:40 恢复办理")
    await page.locator("#pause-ok").click()
    await expect(page.locator("#state-chip")).to_have_text("暂停")
    await expect(page.locator("#empty-title")).to_have_text("暂停服务：就餐")
    await expect(page.locator("#empty-detail")).to_contain_text("午休，13:40 恢复办理")
    await expect(button(page, "call_next")).to_be_disabled()
    await expect(button(page, "resume")).to_be_enabled()
    status, window = await rest(hall, "GET", "/windows/W1", await staff_token(hall, "boss"))
    assert status == 200
    assert (window["state"], window["pause_message"]) == ("paused", "午休，13:40 恢复办理")
    await shot(page, "caller-paused")
    await button(page, "resume").click()
    await expect(page.locator("#state-chip")).to_have_text("空闲")
    assert hall.server.runtime.engine.window("W1").pause is None
    no_page_errors(hall)


async def test_call_next_with_nobody_waiting_is_refused_in_words(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await open_caller(browser, hall)
    await press_key(page, "call_next")
    notice = page.locator("#notice")
    await expect(notice).to_have_text("目前没有等候的群众")
    await expect(notice).to_have_attribute("data-kind", "error")
    await expect(page.locator("#state-chip")).to_have_text("空闲")
    no_page_errors(hall, allowed=REFUSED)


async def test_the_scan_field_starts_and_finishes_a_called_ticket(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await open_caller(browser, hall)
    ticket_id = await issue(hall)
    await button(page, "call_next").click()
    await expect(page.locator("#ticket-number")).to_have_text("A001")
    scan = page.locator("#scan")
    await expect(scan).to_be_focused()
    await page.keyboard.type(ticket_id)
    await page.keyboard.press("Enter")
    await expect(page.locator("#notice")).to_have_text("A001 已受理")
    await expect(page.locator("#state-chip")).to_have_text("办理中")
    await expect(scan).to_have_value("")
    await scan.fill(ticket_id)
    await scan.press("Enter")
    await expect(page.locator("#notice")).to_have_text("A001 已记录办理节点")
    await expect(page.locator('#ticket-nodes li[data-kind="handling"]')).to_have_count(1)
    await scan.fill(ticket_id)
    await scan.press("Enter")
    await expect(page.locator("#notice")).to_have_text("A001 已办结")
    await expect(page.locator("#state-chip")).to_have_text("空闲")
    assert hall.server.runtime.engine.ticket(ticket_id).status == "finished"
    await scan.fill("20991231-Z999")
    await scan.press("Enter")
    await expect(page.locator("#notice")).to_have_text("没有找到今天的这个号码")
    no_page_errors(hall, allowed=("404",))


async def test_asking_for_an_evaluation_gives_the_citizen_a_token(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await open_caller(browser, hall)
    ticket_id = await issue(hall)
    await button(page, "call_next").click()
    await button(page, "start").click()
    await expect(button(page, "evaluate")).to_be_enabled()
    await press_key(page, "evaluate")
    dialog = page.locator("#evaluation-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#evaluation-text")).to_have_text(
        "已为 A001 发起评价，请群众在评价器上打分。")
    href = await page.locator("#evaluation-link").get_attribute("href")
    assert href is not None and href.startswith("/ui/evaluate/") and f"ticket={ticket_id}" in href
    rating = await open_page(browser, hall, href, (1280, 800))
    await expect(rating.locator("#ticket-number")).to_have_text("号码 A001")
    await rating.locator('[data-rating="5"]').click()
    await rating.locator("#submit").click()
    await expect(rating.locator(".thanks-title")).to_have_text("感谢您的评价！")
    stored = await hall.server.pool.fetchrow(
        "SELECT rating, window_id, via FROM evaluations WHERE ticket_id = $1", ticket_id)
    assert stored is not None and (stored["rating"], stored["window_id"], stored["via"]) == (
        5, "W1", "token")
    await dialog.locator('button[type="submit"]').click()
    await expect(dialog).to_be_hidden()
    no_page_errors(hall)


async def test_the_english_switch(browser: Browser, hall: LiveHall) -> None:
    page = await open_caller(browser, hall)
    await issue(hall)
    await page.locator("#lang").click()
    await expect(page.locator("#state-chip")).to_have_text("Idle")
    await expect(button(page, "call_next")).to_contain_text("Call next")
    await expect(page.locator("#lang")).to_have_text("中文")
    await button(page, "call_next").click()
    await expect(page.locator("#ticket-status")).to_have_text("Calling")
    await expect(page.locator("#notice")).to_have_text("Called A001")
    await expect(page.locator('#service-waiting [data-service="biz"]')).to_have_text(
        "企业设立登记: 0 waiting")
    await shot(page, "caller-english")
    await page.locator("#lang").click()
    await expect(page.locator("#state-chip")).to_have_text("呼叫中")
    no_page_errors(hall)


async def test_a_wrong_password_is_said_in_words(browser: Browser, hall: LiveHall) -> None:
    page = await open_page(browser, hall, "/ui/caller/", WINDOW_PC)
    await page.locator("#staff-id").fill("zhang")
    await page.locator("#password").fill("wrong")
    await page.locator("#login-button").click()
    await expect(page.locator("#login-error")).to_have_text("工号或密码错误")
    no_page_errors(hall, allowed=("401",))


# ---------------------------------------------------------------- the API it reads


async def test_the_pause_reasons_are_listed(hall: LiveHall) -> None:
    status, reasons = await rest(hall, "GET", "/pause-reasons", await staff_token(hall, "zhang"))
    assert status == 200
    assert [(r["code"], r["label"], r["limit_minutes"]) for r in reasons] == [
        ("break", "休息", 15), ("lunch", "就餐", 60)]
    status, _ = await rest(hall, "GET", "/pause-reasons")
    assert status == 401


async def test_the_current_ticket_is_for_the_staff_at_the_window(hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await issue(hall, identity=Identity("李四", None, "13900001111"))
    await runtime.execute("call_next", "W1")
    status, current = await rest(hall, "GET", "/windows/W1/current",
                                 await staff_token(hall, "zhang"))
    assert status == 200
    assert current["ticket"]["number"] == "A001"
    assert current["citizen"] == {"name": "李*", "id_number": None, "phone": "139****1111"}
    assert [n["kind"] for n in current["ticket"]["nodes"]] == ["issued", "called"]
    status, refused = await rest(hall, "GET", "/windows/W1/current",
                                 await staff_token(hall, "wang"))
    assert (status, refused["code"]) == (403, "not_at_window")
    status, managed = await rest(hall, "GET", "/windows/W1/current",
                                 await staff_token(hall, "boss"))
    assert status == 200 and managed["citizen"]["name"] == "李*"


async def test_today_counts_the_windows_own_work(hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("login", "W2", "wang")
    for _ in range(4):
        await issue(hall)
    await runtime.execute("call_next", "W1")
    hall.clock.moment = hall.clock.moment.replace(minute=6)
    await runtime.execute("finish", "W1")
    await runtime.execute("call_next", "W1")
    await runtime.execute("skip", "W1")
    await runtime.execute("call_next", "W2")
    status, today = await rest(hall, "GET", "/windows/W1/today", await staff_token(hall, "zhang"))
    assert status == 200
    assert (today["called"], today["finished"], today["skipped"], today["transferred"]) == (
        2, 1, 1, 0)
    assert today["average_service_minutes"] == 6.0
    assert today["waiting"] == 2
    assert [(s["id"], s["waiting"]) for s in today["services"]] == [("biz", 2), ("tax", 0)]
    assert today["held"] == [] and today["pause"] is None
