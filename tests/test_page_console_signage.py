"""The console's schedule editor (D8) in a real Chromium against a real hall: a manager
creates a schedule (with its first screen group and layout), edits and deletes it, and
sees the API's refusals in Chinese beside the form."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from devices.topics import DeviceKind
from hall.config import DeviceEntry
from tests.browser_kit import LiveHall, live_hall, no_page_errors, shot
from tests.hall_kit import ManualClock
from tests.test_api_hall import HALL
from tests.test_page_console import api, console
from tests.test_statistics import at

SCREENS = (DeviceEntry("screen-w1", DeviceKind.WINDOW_SCREEN, "1号窗口屏", area="F1A",
                       screen="W1"),)
DASH = "\N{EN DASH}"


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, replace(HALL, devices=SCREENS), ManualClock(at(8, 50))) as started:
        yield started


async def seeded(hall: LiveHall) -> None:
    await api(hall, "PUT", "/signage/layouts/rest", json={"name": "休息区", "regions": [
        {"id": "main", "kind": "media", "x": 0, "y": 0, "w": 100, "h": 90},
        {"id": "ticker", "kind": "ticker", "x": 0, "y": 90, "w": 100, "h": 10}]})
    await api(hall, "PUT", "/signage/groups/all", json={"name": "全部屏幕"})
    await api(hall, "PUT", "/signage/items/hello", json={
        "kind": "notice", "title": "欢迎", "text": "欢迎来到政务服务大厅"})
    await api(hall, "PUT", "/signage/schedules/morning", json={
        "name": "上午", "group": "all", "layout": "rest", "weekdays": [1, 2, 3, 4, 5],
        "playlist": {"ticker": ["hello"]}, "start": "08:30", "end": "12:00"})


async def schedules(hall: LiveHall) -> list[dict[str, object]]:
    return list((await api(hall, "GET", "/signage"))["schedules"])


async def new_via_form(page: Page, kind: str, name: str, **fields: str) -> None:
    await page.click(f"#add-{kind}")
    form = page.locator(f"#new-{kind}-form")
    await form.locator("#extra-name").fill(name)
    for selector, value in fields.items():
        await form.locator(f"#extra-{selector}").fill(value)
    await form.locator("#extra-save").click()
    await expect(form).to_have_count(0)


async def test_a_schedule_made_in_an_empty_hall_plays_on_its_screens(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await console(browser, hall, "signage")
    await expect(page.locator("#view-signage [data-schedule]")).to_have_count(0)
    await new_via_form(page, "group", "一楼屏幕")
    await new_via_form(page, "layout", "休息区")
    await new_via_form(page, "item", "欢迎", text="欢迎来到政务服务大厅")
    form = page.locator("#schedule-form")
    await expect(form.locator("#schedule-group option:checked")).to_have_text("一楼屏幕")
    await expect(form.locator("#schedule-layout option:checked")).to_have_text("休息区")
    await form.locator("#schedule-name").fill("工作日上午")
    for day in (1, 2, 3, 4, 5):
        await form.locator(f"input[name=wd-{day}]").check()
    await form.locator("#playlist-ticker").get_by_label("欢迎").check()
    await form.locator("#schedule-start").fill("08:30")
    await form.locator("#schedule-end").fill("12:00")
    await form.locator("#schedule-priority").fill("5")
    await form.locator("#save-schedule").click()
    row = page.locator("#view-signage tr[data-schedule]")
    await expect(row).to_have_count(1)
    await expect(row.locator("[data-col=time]")).to_have_text(f"08:30{DASH}12:00")
    await expect(row.locator("[data-col=days]")).to_have_text("周一至周五")
    await expect(page.locator("#view-signage tr:has-text('screen-w1') [data-col=now]")
                 ).to_have_text("工作日上午")
    [stored] = await schedules(hall)
    assert (stored["name"], stored["priority"], stored["weekdays"], stored["start"],
            stored["end"]) == ("工作日上午", 5, [1, 2, 3, 4, 5], "08:30", "12:00")
    assert len(stored["playlist"]["ticker"]) == 1  # type: ignore[index]
    shown = await api(hall, "GET", "/signage/screens/screen-w1",
                      params={"at": at(10, 0).isoformat()})
    assert (shown["schedule"], shown["layout"]) == (stored["id"], stored["layout"])
    later = await api(hall, "GET", "/signage/screens/screen-w1",
                      params={"at": at(13, 0).isoformat()})
    assert later["schedule"] is None
    no_page_errors(hall)


async def test_a_schedules_priority_is_edited_in_the_form(
    browser: Browser, hall: LiveHall,
) -> None:
    await seeded(hall)
    page = await console(browser, hall, "signage")
    await page.click('button[data-edit="morning"]')
    form = page.locator('#schedule-form[data-editing="morning"]')
    await expect(form.locator("#schedule-name")).to_have_value("上午")
    await expect(form.locator("#schedule-start")).to_have_value("08:30")
    await expect(form.locator("input[name=wd-3]")).to_be_checked()
    await expect(form.locator("input[name=wd-6]")).not_to_be_checked()
    await expect(form.locator("#playlist-ticker").get_by_label("欢迎")).to_be_checked()
    await form.locator("#schedule-priority").fill("20")
    await shot(page, "console-signage-schedule")
    await form.locator("#save-schedule").click()
    await expect(page.locator('tr[data-schedule="morning"] [data-col=priority]')).to_have_text("20")
    [stored] = await schedules(hall)
    assert (stored["priority"], stored["start"], stored["playlist"]) == (
        20, "08:30", {"ticker": ["hello"]})
    no_page_errors(hall)


async def test_a_schedule_is_deleted_after_a_confirming_click(
    browser: Browser, hall: LiveHall,
) -> None:
    await seeded(hall)
    page = await console(browser, hall, "signage")
    delete = page.locator('button[data-delete="morning"]')
    await delete.click()
    await expect(delete).to_have_text("确认删除？")
    assert len(await schedules(hall)) == 1
    await delete.click()
    await expect(page.locator("#view-signage tr[data-schedule]")).to_have_count(0)
    await expect(page.locator("#view-signage tr:has-text('screen-w1') [data-col=now]")
                 ).to_have_text("—")
    assert await schedules(hall) == []
    no_page_errors(hall)


async def test_an_empty_time_range_is_refused_with_the_reason_beside_the_form(
    browser: Browser, hall: LiveHall,
) -> None:
    await seeded(hall)
    page = await console(browser, hall, "signage")
    form = page.locator("#schedule-form")
    await form.locator("#schedule-name").fill("坏时段")
    await form.locator("#schedule-group").select_option("all")
    await form.locator("#schedule-layout").select_option("rest")
    await form.locator("#schedule-start").fill("09:00")
    await form.locator("#schedule-end").fill("09:00")
    await form.locator("#save-schedule").click()
    await expect(page.locator("#schedule-error")).to_have_text(
        "时段无效：结束时间不能与开始时间相同；全天播放请都留空")
    await expect(page.locator("#schedule-end")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#schedule-name")).to_have_value("坏时段")
    assert [s["id"] for s in await schedules(hall)] == ["morning"]
    await shot(page, "console-signage-refused")
    no_page_errors(hall, allowed=("status of 422",))
