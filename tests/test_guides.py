"""Guides over REST (D1, D3, D4, D5): service guides with their materials and sample
forms, floor maps, and window camera links for staff."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hall.config import TicketText
from hall.http import build_app
from hall.server import HallServer
from tests.hall_kit import serving
from tests.test_api_hall import BACKEND, HALL, bearer, session

Client = TestClient[Any, Any]
GUIDE_HALL = replace(HALL, tickets={"biz": TicketText(
    "请到一楼A区 1-2 号窗口", ("公司章程", "住所使用证明"), "请留意叫号")})
PDF = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\ntrailer << >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(17)


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[tuple[HallServer, Client]]:
    server = await serving(pool, config=GUIDE_HALL)
    async with TestClient(TestServer(build_app(server))) as client:
        yield server, client
    await server.stop()


async def manager(client: Client) -> dict[str, str]:
    return await session(client, "boss")


async def push_catalog(client: Client) -> None:
    response = await client.put("/api/v1/backend/catalog", headers=bearer(BACKEND), json={
        "items": [{"code": "biz", "name": "企业设立登记", "category": "商事登记",
                   "department": "市场监管局", "materials": ["全体股东身份证原件", "公司章程"],
                   "guide_url": "https://zwfw.example.gov.cn/biz"}]})
    assert response.status == 200, await response.text()


async def test_guides_are_listed_by_category_without_a_login(
        hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.get("/api/v1/guides")
    categories = {c["name"]: [g["service"] for g in c["guides"]] for c in await response.json()}
    assert response.status == 200
    assert categories["商事登记"] == ["biz"]
    assert categories["税务服务"] == ["tax"]


async def test_a_guide_merges_catalog_ticket_and_its_own_materials(
        hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    await push_catalog(client)
    response = await client.put("/api/v1/guides/biz", headers=await manager(client), json={
        "summary": "新设立有限责任公司的登记", "steps": ["网上申报", "窗口核验", "领取执照"],
        "materials": [{"name": "公司章程", "note": "重复的不再列出"},
                      {"name": "名称自主申报告知书", "note": "网上打印"}],
        "fee": "免费", "time_limit": "1 个工作日"})
    assert response.status == 200, await response.text()
    guide = await (await client.get("/api/v1/guides/biz")).json()
    assert [(m["name"], m["source"]) for m in guide["materials"]] == [
        ("全体股东身份证原件", "catalog"), ("公司章程", "catalog"),
        ("住所使用证明", "ticket"), ("名称自主申报告知书", "guide")]
    assert (guide["department"], guide["direction"], guide["time_limit"]) == (
        "市场监管局", "请到一楼A区 1-2 号窗口", "1 个工作日")
    assert [w["id"] for w in guide["windows"]] == ["W1", "W2"]


async def test_a_sample_form_round_trips_with_its_content_type(
        hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    headers = {**await manager(client), "Content-Type": "application/pdf"}
    response = await client.post("/api/v1/guides/biz/forms", params={"title": "设立登记申请书样表"},
                                 data=PDF, headers=headers)
    assert response.status == 201, await response.text()
    form = await response.json()
    guide = await (await client.get("/api/v1/guides/biz")).json()
    assert guide["forms"] == [form]
    fetched = await client.get(form["url"])
    assert (fetched.status, fetched.content_type, await fetched.read()) == (
        200, "application/pdf", PDF)


async def test_a_png_sample_form_is_kept_as_png(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    headers = {**await manager(client), "Content-Type": "image/png"}
    response = await client.post("/api/v1/guides/tax/forms", params={"title": "发票领用表"},
                                 data=PNG, headers=headers)
    form = await response.json()
    fetched = await client.get(form["url"])
    assert (fetched.content_type, await fetched.read()) == ("image/png", PNG)


async def test_a_form_whose_bytes_are_not_its_type_is_refused(
        hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    headers = {**await manager(client), "Content-Type": "image/png"}
    response = await client.post("/api/v1/guides/biz/forms", params={"title": "x"},
                                 data=PDF, headers=headers)
    assert (response.status, (await response.json())["code"]) == (422, "content_mismatch")


async def test_a_linked_form_redirects_to_its_address(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.post("/api/v1/guides/biz/form-links", headers=await manager(client),
                                 json={"title": "章程范本", "url": "https://files.example/z.pdf"})
    form = await response.json()
    assert form["kind"] == "link"
    guide = await (await client.get("/api/v1/guides/biz")).json()
    own = [f for f in guide["forms"] if f["kind"] == "link"]
    fetched = await client.get(f"/api/v1/guides/biz/forms/{own[0]['id']}",
                               allow_redirects=False)
    assert (fetched.status, fetched.headers["Location"]) == (302, "https://files.example/z.pdf")


async def test_only_managers_add_forms(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.post("/api/v1/guides/biz/form-links", headers=await session(
        client, "zhang"), json={"title": "x", "url": "https://files.example/x.pdf"})
    assert response.status == 403


async def test_a_guide_for_an_unknown_service_is_a_404(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.get("/api/v1/guides/nope")
    assert (response.status, (await response.json())["code"]) == (404, "unknown_service")


async def test_a_floor_map_lists_its_areas_and_windows_with_positions(
        hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.put("/api/v1/floors/1", headers=await manager(client), json={
        "name": "一楼大厅", "width": 1200, "height": 800,
        "areas": {"F1A": {"x": 0, "y": 0, "w": 600, "h": 800}},
        "windows": {"W1": {"x": 100, "y": 50}},
        "features": [{"label": "取号机", "kind": "kiosk", "x": 650, "y": 700}]})
    assert response.status == 200, await response.text()
    floor = await (await client.get("/api/v1/floors/1")).json()
    assert (floor["name"], floor["width"], floor["height"]) == ("一楼大厅", 1200, 800)
    areas = {a["id"]: a["shape"] for a in floor["areas"]}
    assert areas == {"F1A": {"x": 0, "y": 0, "w": 600, "h": 800}, "F1B": None}
    windows = {w["id"]: w["position"] for w in floor["windows"]}
    assert windows == {"W1": {"x": 100, "y": 50}, "W2": None, "W3": None, "W4": None}
    assert floor["features"][0]["label"] == "取号机"


async def test_floors_are_listed_for_the_floor_guide(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    floors = await (await client.get("/api/v1/floors")).json()
    assert [(f["floor"], f["areas"], f["mapped"]) for f in floors] == [
        (1, ["F1A", "F1B"], False), (2, ["F2A"], False)]


async def test_a_window_of_another_floor_is_refused_on_the_map(
        hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.put("/api/v1/floors/1", headers=await manager(client), json={
        "width": 100, "height": 100, "windows": {"W5A": {"x": 1, "y": 1}}})
    assert (response.status, (await response.json())["code"]) == (422, "unknown_window")


async def test_a_camera_link_is_for_staff_only(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.put("/api/v1/windows/W1/camera", headers=await manager(client),
                                json={"url": "rtsp://cam:secret@10.0.3.21/stream1",
                                      "label": "1号窗口摄像机"})
    assert response.status == 200, await response.text()
    staff = await client.get("/api/v1/windows/W1/camera", headers=await session(client, "zhang"))
    anyone = await client.get("/api/v1/windows/W1/camera")
    assert (await staff.json())["url"] == "rtsp://cam:secret@10.0.3.21/stream1"
    assert anyone.status == 401


async def test_a_camera_password_stays_out_of_the_audit_log(
        hall: tuple[HallServer, Client]) -> None:
    server, client = hall
    await client.put("/api/v1/windows/W1/camera", headers=await manager(client),
                     json={"url": "rtsp://cam:secret@10.0.3.21:554/stream1"})
    detail = await server.pool.fetchval(
        "SELECT detail::text FROM audit_log WHERE action = 'camera.put'")
    assert "secret" not in detail
    assert "rtsp://cam:***@10.0.3.21:554/stream1" in detail


async def test_a_camera_address_must_be_a_stream_url(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.put("/api/v1/windows/W1/camera", headers=await manager(client),
                                json={"url": "javascript:alert(1)"})
    assert response.status == 422


async def test_every_camera_is_listed_for_the_supervision_wall(
        hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    headers = await manager(client)
    for window in ("W1", "W3"):
        await client.put(f"/api/v1/windows/{window}/camera", headers=headers,
                         json={"url": f"https://nvr.example/live/{window}.m3u8"})
    cameras = await (await client.get("/api/v1/cameras", headers=headers)).json()
    assert [(c["window"], c["window_name"]) for c in cameras] == [
        ("W1", "1号窗口"), ("W3", "3号窗口")]
