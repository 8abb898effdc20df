"""The approval backend's link, driven end to end by the reference backend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hall.http import build_app
from hall.server import HallServer
from tests.backend_sim import ReferenceBackend
from tests.engine_kit import OPENING
from tests.hall_kit import serving
from tests.test_api_hall import BACKEND, HALL, KIOSK, bearer, open_window, session

Client = TestClient[Any, Any]
ZHANG_SAN = {"name": "张三", "id_number": "11010519491231002X", "phone": "13812345678"}


@pytest.fixture
async def linked(pool: asyncpg.Pool) -> AsyncIterator[tuple[HallServer, Client, ReferenceBackend]]:
    server = await serving(pool, config=HALL)
    async with TestClient(TestServer(build_app(server))) as client:
        backend = ReferenceBackend(client, BACKEND)
        yield server, client, backend
        await backend.stop()
    await server.stop()


def booking(code: str, service: str = "fund", minutes: int = 20) -> dict[str, Any]:
    start = OPENING + timedelta(minutes=minutes)
    return {
        "code": code, "service": service, "slot_start": start.isoformat(),
        "slot_end": (start + timedelta(minutes=30)).isoformat(), "citizen": ZHANG_SAN,
    }


async def test_a_catalog_push_links_items_to_services_and_names_the_gaps(
    linked: tuple[HallServer, Client, ReferenceBackend],
) -> None:
    _, client, backend = linked
    result = await backend.push_catalog([
        {"code": "biz", "name": "企业设立登记", "category": "商事登记", "materials": ["身份证"]},
        {"code": "tax", "name": "发票申领", "category": "税务服务"},
        {"code": "marriage", "name": "结婚登记", "category": "民政婚姻"},
    ])
    assert result["items_without_service"] == ["marriage"]
    assert result["services_without_item"] == ["fund", "house", "morning"]
    catalog = await (await client.get("/api/v1/catalog")).json()
    assert [(i["code"], i["service"]) for i in catalog] == [
        ("biz", "biz"), ("marriage", None), ("tax", "tax")]


async def test_a_second_catalog_push_replaces_the_first(
    linked: tuple[HallServer, Client, ReferenceBackend],
) -> None:
    _, client, backend = linked
    await backend.push_catalog([{"code": "biz", "name": "旧名称", "category": "商事登记"},
                                {"code": "tax", "name": "发票申领", "category": "税务服务"}])
    result = await backend.push_catalog([{"code": "biz", "name": "新名称", "category": "商事登记"}])
    assert result["removed"] == 1
    catalog = await (await client.get("/api/v1/catalog")).json()
    assert [(i["code"], i["name"]) for i in catalog] == [("biz", "新名称")]


async def test_only_the_backend_pushes_the_catalog(
    linked: tuple[HallServer, Client, ReferenceBackend],
) -> None:
    _, client, _ = linked
    response = await client.put("/api/v1/backend/catalog", json={"items": []},
                                headers=bearer(KIOSK))
    assert response.status == 403


async def test_an_imported_appointment_checks_in_at_the_kiosk_for_its_slot(
    linked: tuple[HallServer, Client, ReferenceBackend],
) -> None:
    server, client, backend = linked
    manager = await session(client, "boss")
    await client.post("/api/v1/windows/W5A/login", json={"staff_id": "chen"}, headers=manager)
    await backend.import_appointments([booking("Q7K2M9")])
    response = await client.post("/api/v1/tickets", json={"appointment_code": "Q7K2M9"},
                                 headers=bearer(KIOSK))
    body = await response.json()
    assert (response.status, body["source"], body["service"]) == (201, "appointment", "fund")
    ticket = server.runtime.engine.ticket(body["id"])
    assert ticket.appointment_slot == OPENING + timedelta(minutes=20)
    appointment = await (await client.get("/api/v1/appointments/Q7K2M9",
                                          headers=bearer(KIOSK))).json()
    assert (appointment["status"], appointment["ticket_id"]) == ("checked_in", body["id"])


async def test_an_appointment_checks_in_once(
    linked: tuple[HallServer, Client, ReferenceBackend],
) -> None:
    _, client, backend = linked
    manager = await session(client, "boss")
    await client.post("/api/v1/windows/W5A/login", json={"staff_id": "chen"}, headers=manager)
    await backend.import_appointments([booking("ONCE01")])
    first = await client.post("/api/v1/tickets", json={"appointment_code": "ONCE01"},
                              headers=bearer(KIOSK))
    again = await client.post("/api/v1/tickets", json={"appointment_code": "ONCE01"},
                              headers=bearer(KIOSK))
    assert first.status == 201
    assert (again.status, (await again.json())["code"]) == (409, "appointment_not_bookable")


async def test_a_refused_check_in_leaves_the_appointment_booked(
    linked: tuple[HallServer, Client, ReferenceBackend],
) -> None:
    _, client, backend = linked
    await backend.import_appointments([booking("LATER1")])
    refused = await client.post("/api/v1/tickets", json={"appointment_code": "LATER1"},
                                headers=bearer(KIOSK))
    assert (await refused.json())["code"] == "no_open_window"
    appointment = await (await client.get("/api/v1/appointments/LATER1",
                                          headers=bearer(KIOSK))).json()
    assert appointment["status"] == "booked"


async def test_an_unknown_appointment_code_is_a_404(
    linked: tuple[HallServer, Client, ReferenceBackend],
) -> None:
    _, client, _ = linked
    response = await client.post("/api/v1/tickets", json={"appointment_code": "NOPE99"},
                                 headers=bearer(KIOSK))
    assert (response.status, (await response.json())["code"]) == (404, "unknown_appointment")


async def test_the_backend_prefills_its_form_from_an_id_card_ticket(
    linked: tuple[HallServer, Client, ReferenceBackend],
) -> None:
    _, client, backend = linked
    backend.follow()
    await open_window(client, "W1", "zhang")
    response = await client.post(
        "/api/v1/tickets", json={"service": "biz", "source": "id_card", "identity": ZHANG_SAN},
        headers=bearer(KIOSK),
    )
    ticket_id = (await response.json())["id"]
    await backend.wait_for(lambda e: e.get("ticket_id") == ticket_id)
    form = backend.forms[ticket_id]
    assert (form.applicant_name, form.applicant_id_number, form.applicant_phone) == (
        "张三", "11010519491231002X", "13812345678")


async def test_staff_see_the_identity_masked_and_screens_not_at_all(
    linked: tuple[HallServer, Client, ReferenceBackend],
) -> None:
    _, client, _ = linked
    headers = await open_window(client, "W1", "zhang")
    async with client.ws_connect("/api/v1/events?type=ticket.issued", headers=headers) as staff, \
            client.ws_connect("/api/v1/events?type=ticket.issued") as screen:
        await client.post(
            "/api/v1/tickets", json={"service": "biz", "source": "id_card", "identity": ZHANG_SAN},
            headers=bearer(KIOSK),
        )
        seen_by_staff = json.loads(await staff.receive_str(timeout=5))
        seen_by_screen = json.loads(await screen.receive_str(timeout=5))
    assert seen_by_staff["citizen"] == {
        "name": "张*", "id_number": "110105********002X", "phone": "138****5678"}
    assert "citizen" not in seen_by_screen


async def test_the_backend_resumes_after_a_cut_with_every_event_once(
    linked: tuple[HallServer, Client, ReferenceBackend],
) -> None:
    server, client, backend = linked
    backend.follow()
    await open_window(client, "W1", "zhang")
    await backend.wait_for(lambda e: e["type"] == "window.logged_in")
    await backend.cut()
    for _ in range(10):
        await client.post("/api/v1/tickets", json={"service": "biz"}, headers=bearer(KIOSK))
    last = server.runtime.committer.next_seq - 1
    await backend.wait_for(lambda e: e["seq"] == last)
    assert [e["seq"] for e in backend.events] == list(range(1, last + 1))


async def test_case_progress_from_the_backend_can_be_queried_by_case_code(
    linked: tuple[HallServer, Client, ReferenceBackend],
) -> None:
    _, client, backend = linked
    await open_window(client, "W1", "zhang")
    ticket = await (await client.post("/api/v1/tickets", json={"service": "biz"},
                                      headers=bearer(KIOSK))).json()
    await backend.report("JY2026-0001", "accepted", ticket["id"], "已受理")
    await backend.report("JY2026-0001", "done", ticket["id"], "已办结，请到3号窗口领取证照")
    steps = await (await client.get("/api/v1/cases/JY2026-0001")).json()
    assert [s["status"] for s in steps] == ["accepted", "done"]
    assert (await client.get("/api/v1/cases/NOPE")).status == 404

