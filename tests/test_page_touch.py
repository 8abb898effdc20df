"""The touch-query page (D1, D3) in a real Chromium on a 1920×1080 touch screen: the hall
now, a service guide with its materials and sample form, the floor map drawn from the
manager's map, the notices, and a case's progress by its code."""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import aiohttp
import asyncpg
import pytest
from playwright.async_api import Browser, Page, expect

from hall.config import TicketText
from queueing.tickets import Source
from tests.browser_kit import BOARD, LiveHall, live_hall, no_page_errors, open_page, shot
from tests.test_api_hall import BACKEND, HALL, PASSWORD, bearer

TOUCH_HALL = replace(HALL, tickets={
    "biz": TicketText("请到一楼A区 1-2 号窗口", ("营业执照申请书", "全体股东身份证原件"), ""),
})
PAGE = "/ui/touch/"


def sample_png(width: int = 120, height: int = 160) -> bytes:
    """A small grey-lined white page: a real PNG for the sample-form upload."""
    rows = b"".join(
        b"\x00" + (b"\xb0\xb0\xb0" if y % 16 == 8 else b"\xff\xff\xff") * width
        for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[LiveHall]:
    async with live_hall(pool, TOUCH_HALL) as started:
        yield started


async def as_manager(hall: LiveHall, method: str, path: str, **kwargs: Any) -> Any:
    """A manager's edit over the live hall's own port."""
    async with aiohttp.ClientSession() as client:
        login = await client.post(hall.url("/api/v1/auth/login"),
                                  json={"staff_id": "boss", "password": PASSWORD})
        headers = {**bearer((await login.json())["token"]), **kwargs.pop("headers", {})}
        response = await client.request(method, hall.url(f"/api/v1{path}"), headers=headers,
                                        **kwargs)
        body = await response.json()
        assert response.status in (200, 201), body
        return body


async def touch(browser: Browser, hall: LiveHall) -> Page:
    page = await open_page(browser, hall, PAGE, BOARD, timezone_id="Asia/Shanghai")
    await expect(page.locator("body")).to_have_attribute("data-ready", "true")
    return page


async def test_the_start_shows_the_hall_now(browser: Browser, hall: LiveHall) -> None:
    runtime = hall.server.runtime
    await runtime.execute("login", "W1", "zhang")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    page = await touch(browser, hall)
    await expect(page.locator('[data-service="biz"] .service-line')).to_have_text(
        "等候 1 人 · 约 10 分钟")
    await expect(page.locator('[data-service="fund"]')).to_have_class("service-card closed")
    await runtime.execute("issue", "biz", Source.WALK_IN)
    await expect(page.locator('[data-service="biz"] .service-line')).to_contain_text("等候 2 人")
    await shot(page, "touch-hall")
    no_page_errors(hall)


async def test_a_guide_shows_its_materials_and_sample_form(
    browser: Browser, hall: LiveHall,
) -> None:
    await as_manager(hall, "PUT", "/guides/biz", json={
        "summary": "设立有限责任公司、股份有限公司及其分支机构。",
        "steps": ["网上或窗口提交申请", "窗口受理审核", "领取营业执照"],
        "materials": [{"name": "住所使用证明", "note": "租赁合同或产权证明"}],
        "time_limit": "3 个工作日"})
    await as_manager(hall, "POST", "/guides/biz/forms?title=设立登记申请书样表",
                     data=sample_png(), headers={"Content-Type": "image/png"})
    page = await touch(browser, hall)
    await page.locator('[data-section="guides"]').click()
    await page.locator('[data-guide="biz"]').click()
    detail = page.locator(".guide-detail")
    await expect(detail.locator(".guide-name")).to_have_text("企业设立登记")
    await expect(detail.locator(".material-list li")).to_have_count(3)
    await expect(detail.locator(".material-list")).to_contain_text("住所使用证明")
    await expect(detail.locator(".steps li")).to_have_count(3)
    await expect(detail.locator(".facts")).to_contain_text("3 个工作日")
    await expect(detail.locator(".form-title")).to_have_text("设立登记申请书样表")
    await shot(page, "touch-guide")
    await detail.locator(".form-open").click()
    await expect(page.locator("#viewer")).to_be_visible()
    await expect(page.locator("#viewer-title")).to_have_text("设立登记申请书样表")
    await shot(page, "touch-guide-form")
    await page.locator("#viewer-close").click()
    await expect(page.locator("#viewer")).to_be_hidden()
    no_page_errors(hall)


async def test_the_floor_map_draws_the_areas_and_windows(
    browser: Browser, hall: LiveHall,
) -> None:
    await as_manager(hall, "PUT", "/floors/1", json={
        "name": "一楼大厅", "width": 1000, "height": 560,
        "areas": {"F1A": {"x": 40, "y": 40, "w": 440, "h": 480},
                  "F1B": {"x": 520, "y": 40, "w": 440, "h": 480}},
        "windows": {"W1": {"x": 160, "y": 300}, "W2": {"x": 360, "y": 300},
                    "W3": {"x": 640, "y": 300}, "W4": {"x": 840, "y": 300}},
        "features": [{"x": 500, "y": 530, "label": "入口", "kind": "entrance"}]})
    page = await touch(browser, hall)
    await page.locator('[data-section="floors"]').click()
    await expect(page.locator(".floor-tab.active")).to_have_text("一楼大厅")
    await expect(page.locator("svg .map-area")).to_have_count(2)
    await expect(page.locator('svg [data-area="F1A"] text')).to_have_text("一楼A区")
    await expect(page.locator("svg .map-window")).to_have_count(4)
    await expect(page.locator(".legend")).to_contain_text("企业设立登记")
    await shot(page, "touch-floor-map")
    await page.locator('[data-floor="2"]').click()
    await expect(page.locator(".map-note")).to_be_visible()
    await expect(page.locator('svg [data-area="F2A"]')).to_have_count(1)
    await expect(page.locator("svg .map-window")).to_have_count(2)
    await shot(page, "touch-floor-unmapped")
    no_page_errors(hall)


async def test_a_case_query_shows_its_progress(browser: Browser, hall: LiveHall) -> None:
    async with aiohttp.ClientSession() as client:
        for status, message in (("受理", "材料齐全，已受理"), ("审核中", "正在审核")):
            response = await client.post(
                hall.url("/api/v1/backend/cases/SZ2026-0042/progress"),
                json={"status": status, "message": message}, headers=bearer(BACKEND))
            assert response.status == 201, await response.text()
    page = await touch(browser, hall)
    await page.locator('[data-section="case"]').click()
    for key in "SZ2026-0042":
        await page.locator(f'.keypad [data-key="{key}"]').click()
    await expect(page.locator("#case-code")).to_have_text("SZ2026-0042")
    await page.locator(".case-go").click()
    await expect(page.locator(".timeline .step")).to_have_count(2)
    await expect(page.locator(".step.latest .step-status")).to_have_text("审核中")
    await expect(page.locator(".case-of")).to_have_text("办件编号 SZ2026-0042")
    await shot(page, "touch-case")
    await page.locator('.keypad [data-key="back"]').click()
    await page.locator(".case-go").click()
    await expect(page.locator(".case-none")).to_have_text("未查询到该办件，请核对编号")
    no_page_errors(hall, allowed=("status of 404",))


async def test_notices_show_live_and_the_page_speaks_english(
    browser: Browser, hall: LiveHall,
) -> None:
    page = await touch(browser, hall)
    await page.locator('[data-section="notices"]').click()
    await expect(page.locator(".empty")).to_have_text("暂无通知")
    await as_manager(hall, "POST", "/signage/notices",
                     json={"text": "今日16:00起公积金业务暂停办理", "level": "warning",
                           "minutes": 120})
    await expect(page.locator(".notice-text")).to_have_text("今日16:00起公积金业务暂停办理")
    await shot(page, "touch-notices")
    await page.locator("#language").click()
    await expect(page.locator(".section-title")).to_have_text("Notices")
    await expect(page.locator('[data-section="guides"]')).to_have_text("Service guides")
    await expect(page.locator(".notice-level")).to_have_text("Warning")
    await shot(page, "touch-english")
    no_page_errors(hall)
