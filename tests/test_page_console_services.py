"""The console's hours & quotas section edits a service's terms (Q4, Q14), in a real
Chromium against a real hall, and the route behind it: PUT /api/v1/services/{id}/terms."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from queueing import Source
from tests.browser_kit import (
    WINDOW_PC,
    LiveHall,
    live_hall,
    no_page_errors,
    open_page,
    shot,
)
from tests.hall_kit import ManualClock
from tests.test_api_hall import HALL, KIOSK, PASSWORD
from tests.test_statistics import at

DASH = "\N{EN DASH}"


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, HALL, ManualClock(at(9, 30))) as started:
        await started.server.runtime.execute("login", "W1", "zhang")
        await started.server.runtime.execute("login", "W4", "wang")
        yield started


async def token_of(hall: LiveHall, staff: str) -> str:
    login = {"staff_id": staff, "password": PASSWORD}
    async with aiohttp.ClientSession() as http, http.post(
        hall.url("/api/v1/auth/login"), json=login) as response:
        return str((await response.json())["token"])


async def call(hall: LiveHall, method: str, path: str, token: str, **kwargs: Any,
               ) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http, http.request(
        method, hall.url(f"/api/v1{path}"), headers=headers, **kwargs) as response:
        return response.status, await response.json() if response.status != 204 else None


async def put_terms(hall: LiveHall, service: str, body: dict[str, Any],
                    staff: str = "boss") -> tuple[int, Any]:
    return await call(hall, "PUT", f"/services/{service}/terms", await token_of(hall, staff),
                      json=body)


async def kiosk_service(hall: LiveHall, service: str) -> dict[str, Any]:
    status, body = await call(hall, "GET", "/services", KIOSK)
    assert status == 200
    return next(s for s in body if s["id"] == service)


async def console(browser: Browser, hall: LiveHall) -> Page:
    token = await token_of(hall, "boss")
    page = await open_page(browser, hall, f"/ui/console/?token={token}#services", WINDOW_PC,
                           locale="zh-CN")
    await expect(page.locator("#view-services")).to_be_visible()
    return page


async def edit(page: Page, service: str) -> None:
    await page.locator(f'button[data-edit="{service}"]').click()
    await expect(page.locator(f'#terms-form[data-service="{service}"]')).to_be_visible()


# ---------------------------------------------------------------- the console


async def test_a_manager_changes_hours_and_the_kiosk_sees_the_service_outside_them(
    browser: Browser, hall: LiveHall,
) -> None:
    assert (await kiosk_service(hall, "biz"))["closed_reason"] is None
    page = await console(browser, hall)
    await edit(page, "biz")
    rows = page.locator("#terms-form li.interval")
    await expect(rows).to_have_count(1)
    await expect(rows.locator("[data-part=to]")).to_have_value("24:00")
    await rows.locator("[data-part=from]").fill("10:00")
    await rows.locator("[data-part=to]").fill("12:00")
    await page.locator("#terms-add").click()
    await rows.nth(1).locator("[data-part=from]").fill("13:30")
    await rows.nth(1).locator("[data-part=to]").fill("17:00")
    await shot(page, "console-services-edit")
    await page.locator("#terms-save").click()
    await expect(page.locator('tr[data-service="biz"] [data-col=hours]')).to_have_text(
        f"每天 10:00{DASH}12:0013:30{DASH}17:00")
    await expect(page.locator("#terms-form")).to_have_count(0)
    await expect(page.locator('tr[data-service="biz"] [data-col=open]')).to_have_text("停止取号")
    _, body = await call(hall, "GET", "/console", await token_of(hall, "boss"))
    biz = next(s for s in body["services"] if s["id"] == "biz")
    assert biz["hours"]["intervals"] == [["10:00", "12:00"], ["13:30", "17:00"]]
    assert (await kiosk_service(hall, "biz"))["closed_reason"] == "outside_hours"
    await shot(page, "console-services-saved")
    no_page_errors(hall)


async def test_a_manager_lowers_a_quota_and_the_kiosk_sees_it_used_up(
    browser: Browser, hall: LiveHall,
) -> None:
    await hall.server.runtime.execute("issue", "house", Source.WALK_IN)
    page = await console(browser, hall)
    await edit(page, "house")
    await page.locator("#terms-form input[name=quota]").fill("1")
    await page.locator("#terms-save").click()
    house = page.locator('tr[data-service="house"]')
    await expect(house.locator("[data-col=quota]")).to_have_text("1")
    await expect(house.locator("[data-col=usage]")).to_have_text("100%")
    kiosk = await kiosk_service(hall, "house")
    assert (kiosk["daily_quota"], kiosk["closed_reason"]) == (1, "quota_exhausted")
    no_page_errors(hall)


async def test_no_limit_lifts_a_quota(browser: Browser, hall: LiveHall) -> None:
    page = await console(browser, hall)
    await edit(page, "house")
    await page.locator("#terms-form input[name=unlimited]").check()
    await expect(page.locator("#terms-form input[name=quota]")).to_be_disabled()
    await page.locator("#terms-save").click()
    await expect(page.locator('tr[data-service="house"] [data-col=quota]')).to_have_text("不限")
    assert (await kiosk_service(hall, "house"))["daily_quota"] is None
    no_page_errors(hall)


async def test_overlapping_intervals_are_named_in_chinese_and_nothing_changes(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await console(browser, hall)
    await edit(page, "morning")
    await page.locator("#terms-add").click()
    second = page.locator("#terms-form li.interval").nth(1)
    await second.locator("[data-part=from]").fill("11:00")
    await second.locator("[data-part=to]").fill("13:00")
    await page.locator("#terms-save").click()
    await expect(page.locator("#terms-result")).to_have_text("时段之间不能重叠")
    await second.locator("button.remove").click()
    await expect(page.locator("#terms-form li.interval")).to_have_count(1)
    await page.locator("#terms-form li.interval [data-part=to]").fill("9:5")
    await page.locator("#terms-save").click()
    await expect(page.locator("#terms-result")).to_have_text(
        f"时间格式应为 09:00（00:00{DASH}24:00）")
    await shot(page, "console-services-error")
    assert hall.server.runtime.engine.layout.services["morning"].hours == \
        hall.server.config.layout.services["morning"].hours
    no_page_errors(hall)


async def test_a_change_made_elsewhere_shows_without_reloading(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await console(browser, hall)
    await expect(page.locator('tr[data-service="tax"] [data-col=quota]')).to_have_text("不限")
    status, _ = await put_terms(hall, "tax", {"hours": [{"from": "09:00", "to": "17:00"}],
                                               "daily_quota": 7})
    assert status == 200
    await expect(page.locator('tr[data-service="tax"] [data-col=quota]')).to_have_text("7")
    no_page_errors(hall)


# ---------------------------------------------------------------- the route


async def test_the_route_answers_the_terms_in_force(hall: LiveHall) -> None:
    status, body = await put_terms(hall, "fund", {
        "hours": [{"from": "13:30", "to": "17:00"}, {"from": "09:00", "to": "12:00"}],
        "daily_quota": 20})
    assert status == 200, body
    assert (body["id"], body["hours"], body["daily_quota"]) == (
        "fund", [["09:00", "12:00"], ["13:30", "17:00"]], 20)
    assert body["seq"] is not None


async def test_new_hours_refuse_a_ticket_outside_them(hall: LiveHall) -> None:
    await put_terms(hall, "biz", {"hours": [{"from": "10:00", "to": "12:00"}], "daily_quota": None})
    status, body = await call(hall, "POST", "/tickets", KIOSK,
                              json={"service": "biz", "source": "walk_in"})
    assert (status, body["code"]) == (409, "outside_hours")


async def test_a_new_quota_refuses_a_ticket_over_it(hall: LiveHall) -> None:
    await put_terms(hall, "biz", {"hours": [{"from": "09:00", "to": "17:00"}], "daily_quota": 0})
    status, body = await call(hall, "POST", "/tickets", KIOSK,
                              json={"service": "biz", "source": "walk_in"})
    assert (status, body["code"]) == (409, "quota_exhausted")


async def test_an_unknown_service_is_404(hall: LiveHall) -> None:
    status, body = await put_terms(hall, "visa", {"hours": [{"from": "09:00", "to": "12:00"}]})
    assert (status, body["code"]) == (404, "unknown_service")


@pytest.mark.parametrize("body", [
    {"hours": [{"from": "09:00", "to": "12:00"}, {"from": "11:00", "to": "13:00"}]},
    {"hours": [{"from": "12:00", "to": "09:00"}]},
    {"hours": [{"from": "9:00", "to": "12:00"}]},
    {"hours": [{"from": "09:00", "to": "25:00"}]},
    {"hours": []},
    {"hours": [{"from": "09:00", "to": "12:00"}], "daily_quota": -1},
])
async def test_bad_terms_are_422_and_change_nothing(hall: LiveHall, body: dict[str, Any]) -> None:
    status, _ = await put_terms(hall, "biz", body)
    assert status == 422
    assert hall.server.runtime.engine.layout.services["biz"] == \
        hall.server.config.layout.services["biz"]


async def test_a_clerk_may_not_change_terms(hall: LiveHall) -> None:
    status, _ = await put_terms(hall, "biz", {"hours": [{"from": "09:00", "to": "12:00"}]},
                                staff="zhang")
    assert status == 403


async def test_a_change_is_audited(hall: LiveHall) -> None:
    await put_terms(hall, "house", {"hours": [{"from": "09:00", "to": "11:00"}], "daily_quota": 2})
    status, body = await call(hall, "GET", "/audit?action=service.", await token_of(hall, "boss"))
    assert status == 200
    (entry,) = body["records"]
    assert (entry["actor"], entry["action"], entry["target"]) == ("boss", "service.terms", "house")
    assert entry["detail"] == {"hours": [["09:00", "11:00"]], "daily_quota": 2}
