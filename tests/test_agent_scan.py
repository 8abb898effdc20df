"""A clerk scans a citizen's material into a case (D7): the REST request, the hall's
``camera.scan`` to the window's camera, the edge agent capturing a (synthetic, skewed)
page, straightening it and uploading it, and the outcome on the event stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import cv2
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devices.topics import DeviceKind
from drivers.agent import DocumentCameraDevice
from drivers.simulators import camera as sim
from hall.auth import token_sha256
from hall.config import AuthConfig, DeviceEntry, TokenEntry
from hall.device_link import DeviceLink
from hall.http import build_app
from hall.server import HallServer
from tests.agent_kit import AGENT_HALL, agent_config, agent_running, eventually, status
from tests.bus_kit import hall_on_bus
from tests.mqtt_kit import Mosquitto
from tests.test_api_hall import AUTH, BACKEND, bearer, open_window

Client = TestClient[Any, Any]
CAMERA_TOKEN = "camera-w1-upload-token"
CONFIG = replace(
    AGENT_HALL,
    devices=(*AGENT_HALL.devices, DeviceEntry(
        "camera-w1", DeviceKind.DOCUMENT_CAMERA, "1号窗口高拍仪", area="F1A", window="W1")),
    auth=AuthConfig(tokens=(*AUTH.tokens, TokenEntry("camera-w1", "device",
                                                     token_sha256(CAMERA_TOKEN))),
                    staff=AUTH.staff),
)


@pytest.fixture
def desk_photo(tmp_path: Path) -> Path:
    """What the camera sees: an A4 page lying turned and in perspective on a desk."""
    page = sim.render_page(dpi=100, seed=11)
    photo, _corners = sim.photograph(page, rotation=12.0, lighting_gradient=0.25, noise=3.0)
    path = tmp_path / "desk.png"
    cv2.imwrite(str(path), photo)
    return path


@pytest.fixture
async def hall(pool: asyncpg.Pool, mosquitto: Mosquitto) -> AsyncIterator[
        tuple[HallServer, DeviceLink, Client]]:
    async with hall_on_bus(pool, mosquitto, CONFIG) as bus, TestClient(
            TestServer(build_app(bus.server))) as client:
        yield bus.server, bus.link, client


def camera_device(source: Path) -> dict[str, object]:
    return {"id": "camera-w1", "kind": "document_camera", "camera": {"source": str(source)},
            "token_env": "CAMERA_W1_TOKEN"}


async def finished(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT data FROM hall_events WHERE type = 'camera.scan_finished' ORDER BY seq")
    return [json.loads(row["data"]) for row in rows]


async def test_a_scan_asked_at_the_window_lands_on_the_case_as_a_pdf(
    hall: tuple[HallServer, DeviceLink, Client], pool: asyncpg.Pool, mosquitto: Mosquitto,
    desk_photo: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _server, link, client = hall
    monkeypatch.setenv("CAMERA_W1_TOKEN", CAMERA_TOKEN)
    config = agent_config(mosquitto, [camera_device(desk_photo)])
    config = config.model_copy(update={"agent": config.agent.model_copy(
        update={"server_url": str(client.make_url("")).rstrip("/")})})
    async with agent_running(config) as agent:
        camera = agent.devices["camera-w1"]
        assert isinstance(camera, DocumentCameraDevice)
        await eventually(lambda: status(link, "camera-w1").online)
        headers = await open_window(client, "W1", "zhang")
        response = await client.post("/api/v1/windows/W1/scan", headers=headers,
                                     json={"case_id": "JY2026-0042", "dpi": 100})
        asked = await response.json()
        assert response.status == 202, asked
        assert asked["cameras"] == ["camera-w1"]
        await eventually(lambda: camera.last_reply is not None, timeout=15)
    outcome = await finished(pool)
    assert len(outcome) == 1 and outcome[0]["ok"], outcome
    assert (outcome[0]["job"], outcome[0]["case_id"]) == (asked["job"], "JY2026-0042")
    listed = await client.get("/api/v1/cases/JY2026-0042/documents", headers=bearer(BACKEND))
    documents = await listed.json()
    assert [d["id"] for d in documents] == [outcome[0]["document_id"]]
    assert (documents[0]["content_type"], documents[0]["pages"]) == ("application/pdf", 1)


async def test_a_scan_with_no_page_under_the_camera_fails_with_a_reason(
    hall: tuple[HallServer, DeviceLink, Client], pool: asyncpg.Pool, mosquitto: Mosquitto,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _server, link, client = hall
    empty_desk = tmp_path / "empty.png"
    cv2.imwrite(str(empty_desk), np.full((960, 1280, 3), 90, np.uint8))  # a bare grey desk
    monkeypatch.setenv("CAMERA_W1_TOKEN", CAMERA_TOKEN)
    async with agent_running(agent_config(mosquitto, [camera_device(empty_desk)])) as agent:
        camera = agent.devices["camera-w1"]
        assert isinstance(camera, DocumentCameraDevice)
        await eventually(lambda: status(link, "camera-w1").online)
        headers = await open_window(client, "W1", "zhang")
        response = await client.post("/api/v1/windows/W1/scan", headers=headers,
                                     json={"case_id": "JY2026-0043"})
        assert response.status == 202
        await eventually(lambda: camera.last_reply is not None, timeout=15)
    outcome = await finished(pool)
    assert len(outcome) == 1 and not outcome[0]["ok"]
    assert "no document" in outcome[0]["reason"]


async def ask_scan(client: Client, window: str, staff: str, case_id: str) -> Any:
    headers = await open_window(client, staff_window(staff), staff)
    return await client.post(f"/api/v1/windows/{window}/scan", headers=headers,
                             json={"case_id": case_id})


def staff_window(staff: str) -> str:
    return {"zhang": "W1", "wang": "W2"}[staff]


async def test_a_window_without_a_camera_is_told_so(
    hall: tuple[HallServer, DeviceLink, Client],
) -> None:
    response = await ask_scan(hall[2], "W2", "wang", "JY2026-0044")
    assert response.status == 409
    assert (await response.json())["code"] == "no_camera"


async def test_an_offline_camera_is_refused_at_once(
    hall: tuple[HallServer, DeviceLink, Client],
) -> None:
    response = await ask_scan(hall[2], "W1", "zhang", "JY2026-0045")
    assert response.status == 409
    assert (await response.json())["code"] == "camera_offline"


async def test_staff_scan_only_at_their_own_window(
    hall: tuple[HallServer, DeviceLink, Client],
) -> None:
    response = await ask_scan(hall[2], "W1", "wang", "JY2026-0046")
    assert response.status == 403
