"""The manager's console (Q7, Q13, Q14, D8, G3) in a real Chromium against a real hall:
windows, strategies, hours and quotas, devices, signage, the audit log and reports.
Also the two small routes the console reads: GET /api/v1/console and GET /api/v1/audit."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page, expect

from devices.topics import DeviceKind
from hall.http import build_app
from hall.server import HallServer
from hall.stats_report import FIELDS
from hall.stats_routes import BOM, CSV_HEADER
from queueing import Source
from tests.browser_kit import (
    WINDOW_PC,
    LiveHall,
    live_hall,
    no_page_errors,
    open_page,
    shot,
)
from tests.engine_kit import OPENING
from tests.hall_kit import ManualClock, serving
from tests.test_api_hall import HALL, PASSWORD
from tests.test_statistics import Script, at

DAY = OPENING.date()
DASH = "\N{EN DASH}"


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, HALL, ManualClock(at(8, 50))) as started:
        yield started


async def manager_token(hall: LiveHall) -> str:
    login = {"staff_id": "boss", "password": PASSWORD}
    async with aiohttp.ClientSession() as http, http.post(
        hall.url("/api/v1/auth/login"), json=login) as response:
        return str((await response.json())["token"])


async def api(hall: LiveHall, method: str, path: str, **kwargs: Any) -> Any:
    """The REST API as the manager, over real HTTP."""
    headers = {"Authorization": f"Bearer {await manager_token(hall)}"}
    async with aiohttp.ClientSession() as http, http.request(
        method, hall.url(f"/api/v1{path}"), headers=headers, **kwargs) as response:
        assert response.status < 300, await response.text()
        return await response.json() if response.status != 204 else None


async def console(browser: Browser, hall: LiveHall, view: str = "windows") -> Page:
    """The console of a logged-in manager, on one view."""
    token = await manager_token(hall)
    page = await open_page(browser, hall, f"/ui/console/?token={token}#{view}", WINDOW_PC,
                           locale="zh-CN")
    await expect(page.locator(f"#view-{view}")).to_be_visible()
    return page


# ---------------------------------------------------------------- login and windows


async def test_a_manager_logs_in_and_sees_every_window_with_its_state(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("login", "W2", "wang")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await runtime.execute("call_next", "W2")
    await runtime.execute("pause", "W1", "lunch", message="午休，13:30 恢复办理")
    page = await open_page(browser, hall, "/ui/console/", WINDOW_PC)
    await page.fill("input[name=staff]", "boss")
    await page.fill("input[name=password]", PASSWORD)
    await shot(page, "console-login")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#who")).to_have_text("李主任")
    rows = page.locator("#view-windows tbody tr")
    await expect(rows).to_have_count(6)
    await expect(page.locator('tr[data-window="W1"] [data-col=state]')).to_have_text("暂停")
    await expect(page.locator('tr[data-window="W2"] [data-col=state]')).to_have_text("叫号中")
    await expect(page.locator('tr[data-window="W2"] [data-col=staff]')).to_have_text("王芳")
    await expect(page.locator('tr[data-window="W2"] [data-col=ticket]')).to_have_text("A001")
    await expect(page.locator('tr[data-window="W3"] [data-col=state]')).to_have_text("未登录")
    await expect(page.locator('tr[data-window="W1"] [data-col=services]')).to_have_text(
        "企业设立登记发票申领")
    await shot(page, "console-windows")
    no_page_errors(hall)


async def test_a_clerk_login_is_refused_the_console(browser: Browser, hall: LiveHall) -> None:
    page = await open_page(browser, hall, "/ui/console/", WINDOW_PC)
    await page.fill("input[name=staff]", "zhang")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_have_text(
        "此账号不是管理人员账号，无权使用管理控制台")
    await expect(page.locator("#app")).to_be_hidden()
    assert await page.evaluate("localStorage.getItem('smarthall.token')") is None
    await shot(page, "console-refused")
    no_page_errors(hall)


async def test_the_window_list_follows_the_hall_live(browser: Browser, hall: LiveHall) -> None:
    page = await console(browser, hall)
    await expect(page.locator('tr[data-window="W3"] [data-col=state]')).to_have_text("未登录")
    await hall.server.runtime.execute("login", "W3", "zhang")
    await expect(page.locator('tr[data-window="W3"] [data-col=state]')).to_have_text("空闲")
    await expect(page.locator('tr[data-window="W3"] [data-col=staff]')).to_have_text("张伟")
    no_page_errors(hall)


async def test_a_manager_closes_a_window_and_opens_it_again(
    browser: Browser, hall: LiveHall,
) -> None:
    engine = hall.server.runtime.engine
    await hall.server.runtime.execute("login", "W1", "zhang")
    page = await console(browser, hall)
    close = page.locator('tr[data-window="W1"] button[data-action=close]')
    await close.click()
    await expect(close).to_have_text("确认关闭？")
    await close.click()
    await expect(page.locator('tr[data-window="W1"] [data-col=state]')).to_have_text("已关闭")
    assert engine.window("W1").closed and engine.window("W1").staff is None
    await shot(page, "console-window-closed")
    await page.click('tr[data-window="W1"] button[data-action=open]')
    await expect(page.locator('tr[data-window="W1"] [data-col=state]')).to_have_text("未登录")
    assert not engine.window("W1").closed
    no_page_errors(hall)


async def test_a_live_update_keeps_the_buttons_of_the_windows_it_did_not_change(
    browser: Browser, hall: LiveHall,
) -> None:
    """A button swapped for a new one between mouse down and mouse up gets no click."""
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    page = await console(browser, hall)
    close = page.locator('tr[data-window="W1"] button[data-action=close]')
    button = await close.element_handle()
    await runtime.execute("login", "W2", "wang")
    await expect(page.locator('tr[data-window="W2"] [data-col=state]')).to_have_text("空闲")
    assert await button.evaluate("node => node.isConnected")
    await button.click()
    await expect(close).to_have_text("确认关闭？")
    no_page_errors(hall)


# ---------------------------------------------------------------- strategies


async def test_a_strategy_set_for_a_group_applies_to_its_windows_only(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await console(browser, hall, "strategies")
    await page.select_option("#scope", "group")
    await page.select_option("#target", "front")
    await expect(page.locator("#applies-to")).to_have_text("将应用于：1号窗口、2号窗口")
    await page.click('#chain [data-remove="priority_groups_first"]')
    await page.click('#chain [data-remove="fifo"]')
    await page.fill('#chain [data-rule="appointments_due"] input[data-param=early_minutes]', "5")
    await page.select_option("select[name=add]", "weighted")
    await page.click("#add-rule")
    await expect(page.locator("#chain li")).to_have_count(3)
    await page.click("#apply-strategy")
    await expect(page.locator("#strategy-result")).to_have_text("已应用到：1号窗口、2号窗口")
    want = [{"rule": "transfers_first"}, {"rule": "appointments_due", "early_minutes": 5.0},
            {"rule": "weighted"}]
    windows = {w["id"]: w["strategy"] for w in (await api(hall, "GET", "/console"))["windows"]}
    assert windows["W1"] == windows["W2"] == want
    assert windows["W3"] != want
    await expect(page.locator('tr[data-window="W2"]')).to_have_attribute(
        "data-strategy", "transfers_first,appointments_due,weighted")
    await shot(page, "console-strategies")
    no_page_errors(hall)


# ---------------------------------------------------------------- services


async def test_service_hours_and_quotas_show_with_todays_count(
    browser: Browser, hall: LiveHall,
) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W4", "zhang")
    await runtime.execute("issue", "house", Source.WALK_IN)
    await runtime.execute("issue", "house", Source.WALK_IN)
    page = await console(browser, hall, "services")
    house = page.locator('tr[data-service="house"]')
    await expect(house.locator("[data-col=quota]")).to_have_text("3")
    await expect(house.locator("[data-col=issued]")).to_have_text("2")
    await expect(house.locator("[data-col=usage]")).to_have_text("67%")
    await expect(page.locator('tr[data-service="morning"] [data-col=hours]')).to_have_text(
        f"周一至周五 09:00{DASH}12:00")
    await expect(page.locator('tr[data-service="biz"] [data-col=quota]')).to_have_text("不限")
    await expect(page.locator('tr[data-service="biz"] [data-col=hours]')).to_have_text("全天24小时")
    await expect(page.locator("#services-readonly")).to_be_visible()
    await shot(page, "console-services")
    no_page_errors(hall)


# ---------------------------------------------------------------- devices


async def test_a_manager_approves_a_quarantined_device(browser: Browser, hall: LiveHall) -> None:
    registry = hall.server.devices
    registry.came_online("kiosk-new", DeviceKind.KIOSK, "2.1.0", "cfg-1", hall.clock.now())
    assert registry.status("kiosk-new").quarantined  # type: ignore[union-attr]
    page = await console(browser, hall, "devices")
    row = page.locator('tr[data-device="kiosk-new"]')
    await expect(row).to_have_attribute("data-quarantined", "true")
    await expect(row.locator("[data-col=online]")).to_have_text("在线")
    await expect(page.locator('#device-alerts [data-alert="quarantined"]')).to_be_visible()
    await row.locator("button[data-approve]").click()
    await page.fill("#approve-name", "一楼取号机2")
    await page.select_option("#approve-area", "F1A")
    await shot(page, "console-devices-approve")
    await page.click("#approve-submit")
    await expect(row).to_have_attribute("data-quarantined", "false")
    await expect(row.locator("[data-col=name]")).to_have_text("一楼取号机2")
    await expect(row.locator("[data-col=status]")).to_have_text("已接入")
    status = registry.status("kiosk-new")
    assert status is not None and not status.quarantined and status.approved_by == "boss"
    await shot(page, "console-devices")
    no_page_errors(hall)


# ---------------------------------------------------------------- signage and audit


async def push_and_withdraw(page: Page) -> None:
    await page.fill("#notice-form textarea", "系统升级，暂停受理")
    await page.select_option("#notice-minutes", "30")
    await page.click("#push-notice")
    notice = page.locator("#notices li[data-notice]")
    await expect(notice).to_have_count(1)
    await expect(notice.locator(".text")).to_have_text("系统升级，暂停受理")
    await notice.locator("button[data-withdraw]").click()
    await expect(page.locator("#notices li[data-notice]")).to_have_count(0)


async def test_a_notice_is_pushed_to_every_screen_and_withdrawn(
    browser: Browser, hall: LiveHall,
) -> None:
    await api(hall, "PUT", "/signage/layouts/rest", json={"name": "休息区", "regions": [
        {"id": "main", "kind": "media", "x": 0, "y": 0, "w": 100, "h": 90},
        {"id": "ticker", "kind": "ticker", "x": 0, "y": 90, "w": 100, "h": 10}]})
    await api(hall, "PUT", "/signage/groups/all", json={"name": "全部屏幕"})
    await api(hall, "PUT", "/signage/schedules/morning", json={
        "name": "上午", "group": "all", "layout": "rest", "weekdays": [1, 2, 3, 4, 5],
        "start": "08:30", "end": "12:00"})
    page = await console(browser, hall, "signage")
    await expect(page.locator('tr[data-schedule="morning"] [data-col=time]')).to_have_text(
        f"08:30{DASH}12:00")
    await expect(page.locator('tr[data-schedule="morning"] [data-col=days]')).to_have_text(
        "周一至周五")
    await page.fill("#notice-form textarea", "系统升级，暂停受理")
    await page.select_option("#notice-minutes", "30")
    await page.click("#push-notice")
    notice = page.locator("#notices li[data-notice]")
    await expect(notice.locator(".text")).to_have_text("系统升级，暂停受理")
    live = await api(hall, "GET", "/signage/notices")
    assert [(n["text"], n["level"]) for n in live] == [("系统升级，暂停受理", "urgent")]
    await shot(page, "console-signage")
    await notice.locator("button[data-withdraw]").click()
    await expect(page.locator("#notices li[data-notice]")).to_have_count(0)
    assert await api(hall, "GET", "/signage/notices") == []
    no_page_errors(hall)


async def test_the_audit_log_shows_the_notice_pushed_and_withdrawn(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await console(browser, hall, "signage")
    await push_and_withdraw(page)
    await page.click('#nav a[data-view="audit"]')
    rows = page.locator("#view-audit tbody tr")
    await expect(rows.first).to_have_attribute("data-action", "signage.notice.withdraw")
    await expect(rows.nth(1)).to_have_attribute("data-action", "signage.notice.post")
    await expect(rows.nth(1).locator("[data-col=action]")).to_contain_text("推送紧急通知")
    await expect(rows.nth(1).locator("[data-col=actor]")).to_contain_text("boss")
    await expect(rows.nth(1).locator("[data-col=detail]")).to_contain_text("系统升级，暂停受理")
    await page.select_option("#audit-action", "signage.")
    await page.click("#audit-filter button[type=submit]")
    await expect(rows).to_have_count(2)
    await shot(page, "console-audit")
    no_page_errors(hall)


# ---------------------------------------------------------------- reports


async def seed_history(hall: LiveHall, days: int = 3) -> date:
    """A few days of tickets run through the engine, each rolled up at the rollover;
    gives the business day after the last."""
    script = Script(hall.server, hall.clock)
    kinds = [("biz", Source.WALK_IN), ("tax", Source.ID_CARD), ("biz", Source.MOBILE),
             ("fund", Source.PHONE), ("biz", Source.WALK_IN),
             ("tax", Source.WALK_IN)]
    serve = {"biz": ("W1", "zhang"), "tax": ("W3", "li"), "fund": ("W5A", "wang")}
    for index in range(days):
        day = DAY + timedelta(days=index)
        for window, staff in serve.values():
            await script.do(at(8, 55, day), "login", window, staff)
        tickets = []
        for number in range(4 + 2 * index):
            service, source = kinds[number % len(kinds)]
            tickets.append((await script.issue(at(9, number, day), service, source), service))
        moment = at(9, 12, day)
        for number, (ticket, service) in enumerate(tickets):
            window, staff = serve[service]
            await script.do(moment, "call_ticket", window, ticket)
            await script.do(moment + timedelta(minutes=1), "start", window)
            moment += timedelta(minutes=3 + (number + index) % 4)
            await script.do(moment, "finish", window)
            if number % 3 != 2:
                await script.rate(ticket, window, staff, 5 - (number + index) % 3)
        await script.roll_over(day + timedelta(days=1))
    return DAY + timedelta(days=days)


async def test_reports_chart_a_seeded_history(browser: Browser, hall: LiveHall) -> None:
    await seed_history(hall)
    page = await console(browser, hall, "reports")
    await expect(page.locator("#chart-ratings .main-svg").first).to_be_visible()
    await expect(page.locator('#kpis [data-kpi="tickets"] .value')).to_have_text("18")
    charts = await page.evaluate("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .map((d) => ({id: d.id, types: d.data.map((t) => t.type),
                      points: d.data.reduce((n, t) => n + (t.y || t.values || []).length, 0)}))""")
    by_id = {c["id"]: c for c in charts}
    assert by_id["chart-tickets"]["types"] == ["bar", "bar"]
    assert by_id["chart-tickets"]["points"] == 6       # tickets and served, three days
    assert by_id["chart-times"]["types"] == ["scatter"] * 4
    assert by_id["chart-source"]["types"] == ["pie"]
    assert by_id["chart-ratings"]["types"] == ["bar"]
    await expect(page.locator("#view-reports tbody tr")).to_have_count(3)
    await shot(page, "console-reports")
    await page.select_option("#report-group", "service")
    await page.click("#report-query")
    await expect(page.locator('#view-reports td[data-col="name"]').first).to_be_visible()
    traces = await page.evaluate(
        "() => document.getElementById('chart-tickets').data.map((t) => t.name)")
    assert sorted(traces) == ["企业设立登记", "公积金提取", "发票申领"]
    await shot(page, "console-reports-by-service")
    no_page_errors(hall)


async def test_the_report_downloads_as_csv_with_its_header_row(
    browser: Browser, hall: LiveHall,
) -> None:
    await seed_history(hall, days=1)
    page = await console(browser, hall, "reports")
    await expect(page.locator("#view-reports tbody tr")).to_have_count(1)
    async with page.expect_download() as info:
        await page.click("#report-csv")
    download = await info.value
    assert download.suggested_filename.startswith("stats_day_hall_")
    text = (await download.path()).read_text(encoding="utf-8")
    assert text.startswith(BOM)
    rows = list(csv.reader(io.StringIO(text.removeprefix(BOM))))
    assert rows[0] == [CSV_HEADER[name] for name in FIELDS]
    assert rows[1][:4] == [str(DAY), "", "测试大厅", "4"]
    no_page_errors(hall)


async def test_the_console_follows_the_language_switch(browser: Browser, hall: LiveHall) -> None:
    page = await console(browser, hall, "services")
    await page.click("#lang")
    await expect(page.locator('#nav a[data-view="services"]')).to_have_text("Hours & quotas")
    await expect(page.locator('tr[data-service="biz"] [data-col=quota]')).to_have_text("No limit")
    await shot(page, "console-services-en")
    no_page_errors(hall)


# ---------------------------------------------------------------- the routes


Client = TestClient[Any, Any]


@pytest.fixture
async def client(pool: asyncpg.Pool) -> AsyncIterator[tuple[HallServer, Client]]:
    server = await serving(pool, config=HALL)
    async with TestClient(TestServer(build_app(server))) as test_client:
        yield server, test_client
    await server.stop()


async def session(client: Client, staff_id: str) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login",
                                 json={"staff_id": staff_id, "password": PASSWORD})
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def test_the_audit_api_pages_newest_first(client: tuple[HallServer, Client]) -> None:
    _, http = client
    boss = await session(http, "boss")
    for window in ("W1", "W2", "W3"):
        response = await http.post(f"/api/v1/windows/{window}/close", headers=boss)
        assert response.status == 200
    first = await (await http.get("/api/v1/audit", params={"limit": "2", "action": "window."},
                                  headers=boss)).json()
    assert [(r["action"], r["target"], r["actor"]) for r in first["records"]] == [
        ("window.close_window", "W3", "boss"), ("window.close_window", "W2", "boss")]
    second = await (await http.get("/api/v1/audit", headers=boss, params={
        "limit": "2", "action": "window.", "before": str(first["next_before"])})).json()
    assert [r["target"] for r in second["records"]] == ["W1"]
    assert second["next_before"] is None
    logins = await (await http.get("/api/v1/audit", params={"actor": "boss", "action": "auth."},
                                   headers=boss)).json()
    assert {r["action"] for r in logins["records"]} == {"auth.login"}


async def test_the_audit_and_console_apis_are_for_managers_only(
    client: tuple[HallServer, Client],
) -> None:
    _, http = client
    clerk = await session(http, "zhang")
    for path in ("/api/v1/audit", "/api/v1/console"):
        assert (await http.get(path)).status == 401
        assert (await http.get(path, headers=clerk)).status == 403


async def test_the_console_api_gives_windows_services_hours_and_rules(
    client: tuple[HallServer, Client],
) -> None:
    _, http = client
    body = await (await http.get("/api/v1/console", headers=await session(http, "boss"))).json()
    assert body["viewer"] == {"id": "boss", "name": "李主任", "role": "manager"}
    assert body["groups"] == ["front"]
    w1 = next(w for w in body["windows"] if w["id"] == "W1")
    assert (w1["services"], w1["groups"], w1["strategy"][0]) == (
        {"biz": 1, "tax": 1}, ["front"], {"rule": "transfers_first"})
    morning = next(s for s in body["services"] if s["id"] == "morning")
    assert morning["hours"] == {"weekdays": [0, 1, 2, 3, 4], "intervals": [["09:00", "12:00"]]}
    house = next(s for s in body["services"] if s["id"] == "house")
    assert (house["daily_quota"], house["issued_today"]) == (3, 0)
    rules = {r["name"]: r for r in body["rules"]}
    assert rules["appointments_due"]["params"] == {"early_minutes": 10.0}
    assert rules["fifo"]["exhaustive"] and not rules["transfers_first"]["exhaustive"]
