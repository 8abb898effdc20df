"""Scanned documents attached to cases (D7), over real HTTP and a real database,
up to the camera driver uploading a scanned synthetic page."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from drivers import camera
from drivers.simulators import camera as sim
from hall.auth import token_sha256
from hall.config import AuthConfig, TokenEntry
from hall.documents import MAX_DOCUMENT_BYTES
from hall.http import build_app
from hall.server import HallServer
from tests.backend_sim import ReferenceBackend
from tests.hall_kit import serving
from tests.test_api_hall import AUTH, BACKEND, HALL, bearer, session

Client = TestClient[Any, Any]
CAMERA = "camera-w1-secret-token"
CONFIG = replace(HALL, auth=AuthConfig(
    tokens=(*AUTH.tokens, TokenEntry("camera-w1", "device", token_sha256(CAMERA))),
    staff=AUTH.staff,
))


@pytest.fixture(scope="module")
def scanned_jpeg() -> bytes:
    page = sim.render_page(dpi=100, seed=7)
    photo, _ = sim.photograph(page, rotation=-9.0, lighting_gradient=0.2, noise=3.0)
    return camera.encode_jpeg(camera.scan(photo, paper="A4", dpi=100).image)


@pytest.fixture(scope="module")
def three_page_pdf() -> bytes:
    pages = [sim.render_page(dpi=72, seed=seed).image for seed in range(3)]
    return camera.encode_pdf(pages, dpi=72)


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[tuple[HallServer, Client]]:
    server = await serving(pool, config=CONFIG)
    async with TestClient(TestServer(build_app(server))) as client:
        yield server, client
    await server.stop()


async def post(client: Client, case_id: str, data: bytes, content_type: str = "image/jpeg",
               token: str = CAMERA, filename: str | None = "page-1.jpg") -> Any:
    params = {"filename": filename} if filename is not None else {}
    headers = {**bearer(token), "Content-Type": content_type}
    return await client.post(f"/api/v1/cases/{case_id}/documents", data=data,
                             headers=headers, params=params)


async def problem(response: Any) -> dict[str, Any]:
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    return body


async def test_an_uploaded_jpeg_is_listed_and_fetched_byte_identical(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    _, client = hall
    response = await post(client, "C2024-001", scanned_jpeg)
    stored = await response.json()
    assert response.status == 201, stored
    assert stored["sha256"] == hashlib.sha256(scanned_jpeg).hexdigest()
    assert (stored["size"], stored["pages"], stored["uploaded_by"]) == (
        len(scanned_jpeg), 1, "camera-w1")
    listed = await client.get("/api/v1/cases/C2024-001/documents", headers=bearer(BACKEND))
    assert [d["id"] for d in await listed.json()] == [stored["id"]]
    fetched = await client.get(f"/api/v1/cases/C2024-001/documents/{stored['id']}",
                               headers=bearer(BACKEND))
    assert fetched.status == 200
    assert fetched.content_type == "image/jpeg"
    assert await fetched.read() == scanned_jpeg


async def test_a_pdf_is_stored_with_its_page_count(
    hall: tuple[HallServer, Client], three_page_pdf: bytes
) -> None:
    _, client = hall
    response = await post(client, "C7", three_page_pdf, "application/pdf", filename="材料.pdf")
    body = await response.json()
    assert response.status == 201, body
    assert (body["pages"], body["content_type"], body["filename"]) == (
        3, "application/pdf", "材料.pdf")


async def test_window_staff_upload_and_list_but_only_the_backend_fetches(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    _, client = hall
    staff = await session(client, "zhang")
    response = await client.post("/api/v1/cases/C9/documents", data=scanned_jpeg,
                                 headers={**staff, "Content-Type": "image/jpeg"})
    stored = await response.json()
    assert (response.status, stored["uploaded_by"]) == (201, "zhang")
    listed = await client.get("/api/v1/cases/C9/documents", headers=staff)
    assert [d["filename"] for d in await listed.json()] == ["C9.jpg"]
    fetched = await client.get(f"/api/v1/cases/C9/documents/{stored['id']}", headers=staff)
    assert fetched.status == 403


async def test_a_type_other_than_jpeg_or_pdf_is_a_415_problem(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    response = await post(client, "C1", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")
    body = await problem(response)
    assert (response.status, body["code"]) == (415, "unsupported_media_type")
    assert response.headers["Accept-Post"] == "image/jpeg, application/pdf"


async def test_bytes_unlike_their_content_type_are_a_422_problem(
    hall: tuple[HallServer, Client], three_page_pdf: bytes
) -> None:
    _, client = hall
    response = await post(client, "C1", three_page_pdf, "image/jpeg")
    body = await problem(response)
    assert (response.status, body["code"]) == (422, "content_mismatch")


async def test_a_pdf_cut_short_is_a_422_problem(
    hall: tuple[HallServer, Client], three_page_pdf: bytes
) -> None:
    _, client = hall
    response = await post(client, "C1", three_page_pdf[: len(three_page_pdf) // 2],
                          "application/pdf")
    assert (await problem(response))["code"] == "content_mismatch"


async def test_an_empty_upload_is_a_422_problem(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await post(client, "C1", b"")
    assert (response.status, (await problem(response))["code"]) == (422, "empty_document")


async def test_a_document_over_20_mb_is_a_413_problem(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    _, client = hall
    oversized = scanned_jpeg + b"\0" * (MAX_DOCUMENT_BYTES - len(scanned_jpeg) + 1)
    response = await post(client, "C1", oversized)
    body = await problem(response)
    assert (response.status, body["code"], body["max_bytes"]) == (
        413, "payload_too_large", MAX_DOCUMENT_BYTES)
    listed = await client.get("/api/v1/cases/C1/documents", headers=bearer(BACKEND))
    assert await listed.json() == []


async def test_an_upload_without_credentials_is_a_401_problem(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    _, client = hall
    response = await client.post("/api/v1/cases/C1/documents", data=scanned_jpeg,
                                 headers={"Content-Type": "image/jpeg"})
    assert (response.status, (await problem(response))["code"]) == (401, "unauthorized")


async def test_the_backend_uploads_no_documents(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    _, client = hall
    response = await post(client, "C1", scanned_jpeg, token=BACKEND)
    assert response.status == 403


async def test_a_case_the_hall_has_not_heard_of_takes_documents(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes, three_page_pdf: bytes
) -> None:
    _, client = hall
    before = await (await post(client, "NEW-1", scanned_jpeg)).json()
    report = await client.post("/api/v1/backend/cases/NEW-1/progress",
                               json={"status": "accepted"}, headers=bearer(BACKEND))
    assert report.status == 201
    after = await (await post(client, "NEW-1", three_page_pdf, "application/pdf")).json()
    assert (before["case_known"], after["case_known"]) == (False, True)


async def test_a_malformed_case_id_is_a_422_problem(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    _, client = hall
    response = await post(client, "-" + "x" * 70, scanned_jpeg)
    assert (response.status, (await problem(response))["code"]) == (422, "invalid_case_id")


async def test_the_same_bytes_uploaded_twice_are_one_document(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    _, client = hall
    first = await post(client, "C3", scanned_jpeg)
    again = await post(client, "C3", scanned_jpeg)
    first_body, again_body = await first.json(), await again.json()
    assert (first.status, again.status) == (201, 200)
    assert again_body["duplicate"] and again_body["id"] == first_body["id"]
    assert again_body["seq"] == first_body["seq"]
    listed = await client.get("/api/v1/cases/C3/documents", headers=bearer(BACKEND))
    assert len(await listed.json()) == 1


async def test_an_unknown_document_is_a_404_problem(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    for document_id in ("not-a-uuid", "00000000-0000-4000-8000-000000000000"):
        response = await client.get(f"/api/v1/cases/C1/documents/{document_id}",
                                    headers=bearer(BACKEND))
        assert (response.status, (await problem(response))["code"]) == (404, "unknown_document")


async def test_the_backend_hears_of_a_new_document_on_the_event_stream(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    _, client = hall
    backend = ReferenceBackend(client, BACKEND)
    backend.follow()
    try:
        stored = await (await post(client, "C5", scanned_jpeg)).json()
        event = await backend.wait_for(lambda e: e["type"] == "case.document_added")
    finally:
        await backend.stop()
    assert event["seq"] == stored["seq"]
    assert {k: event[k] for k in ("case_id", "document_id", "sha256", "size", "content_type",
                                  "pages")} == {
        "case_id": "C5", "document_id": stored["id"], "sha256": stored["sha256"],
        "size": len(scanned_jpeg), "content_type": "image/jpeg", "pages": 1}
    assert "filename" not in event


async def test_an_upload_is_audited(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    server, client = hall
    stored = await (await post(client, "C6", scanned_jpeg)).json()
    (entry,) = [e for e in await server.audit.recent() if e["action"] == "document.upload"]
    assert (entry["actor"], entry["role"], entry["target"]) == ("camera-w1", "device",
                                                                stored["id"])
    assert entry["detail"]["sha256"] == stored["sha256"]


async def test_the_camera_driver_uploads_a_scanned_page_to_the_server(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    page = sim.render_page(dpi=100, seed=11, skew=1.5)
    photo, _ = sim.photograph(page, rotation=14.0, lighting_gradient=0.25, noise=4.0, blur=1.0)
    scanned = camera.scan(photo, paper="A4", dpi=100)
    pdf = camera.encode_pdf([scanned.image], dpi=scanned.dpi)
    answer = await camera.upload(pdf, content_type="application/pdf", case_id="C2024-88",
                                 server_url=str(client.make_url("/")), token=CAMERA,
                                 filename="张三-身份证.pdf")
    assert (answer["case_id"], answer["pages"], answer["filename"]) == (
        "C2024-88", 1, "张三-身份证.pdf")
    fetched = await client.get(f"/api/v1/cases/C2024-88/documents/{answer['id']}",
                               headers=bearer(BACKEND))
    assert await fetched.read() == pdf
    assert "filename*=UTF-8''%E5%BC%A0%E4%B8%89" in fetched.headers["Content-Disposition"]


async def test_a_refused_upload_carries_the_servers_problem_text(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    _, client = hall
    with pytest.raises(camera.UploadFailed) as caught:
        await camera.upload(scanned_jpeg, content_type="image/png", case_id="C1",
                            server_url=str(client.make_url("/")), token=CAMERA,
                            filename="p.png")
    refused = caught.value
    assert not isinstance(refused, camera.ServerUnavailable)
    assert (refused.status, refused.code) == (415, "unsupported_media_type")
    assert "Content-Type must be one of image/jpeg, application/pdf" in str(refused)


async def test_an_upload_while_the_hall_cannot_log_events_is_announced_by_its_retry(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    server, client = hall
    server.runtime.ready = False
    refused = await post(client, "C8", scanned_jpeg)
    assert (refused.status, (await problem(refused))["code"]) == (503, "unavailable")
    server.runtime.ready = True
    retried = await post(client, "C8", scanned_jpeg)
    body = await retried.json()
    assert (retried.status, body["duplicate"]) == (200, True)
    assert body["seq"] is not None


async def test_a_hall_with_document_events_in_its_log_restarts(
    pool: asyncpg.Pool, scanned_jpeg: bytes
) -> None:
    server = await serving(pool, config=CONFIG)
    async with TestClient(TestServer(build_app(server))) as client:
        stored = await (await post(client, "C10", scanned_jpeg)).json()
    await server.stop()
    again = await serving(pool, config=CONFIG)
    try:
        replayed = await again.runtime.store.read_since(stored["seq"] - 1, 1)
        assert replayed[0].event.type == "case.document_added"
        assert again.runtime.ready
    finally:
        await again.stop()


async def test_a_server_that_cannot_store_now_is_unavailable_to_the_driver(
    hall: tuple[HallServer, Client], scanned_jpeg: bytes
) -> None:
    server, client = hall
    server.runtime.ready = False
    with pytest.raises(camera.ServerUnavailable) as caught:
        await camera.upload(scanned_jpeg, content_type="image/jpeg", case_id="C1",
                            server_url=str(client.make_url("/")), token=CAMERA,
                            filename="p.jpg")
    server.runtime.ready = True
    assert (caught.value.status, caught.value.code) == (503, "unavailable")
