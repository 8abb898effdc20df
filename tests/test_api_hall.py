"""The hall's REST API over real HTTP and a real database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hall.auth import hash_password, token_sha256
from hall.config import AuthConfig, OidcConfig, StaffEntry, TokenEntry
from hall.http import build_app
from hall.server import HallServer
from tests.hall_kit import CONFIG, serving

KIOSK = "kiosk-secret-token"
BACKEND = "backend-secret-token"
PASSWORD = "window-pass-1"

AUTH = AuthConfig(
    tokens=(
        TokenEntry("kiosk-1", "device", token_sha256(KIOSK)),
        TokenEntry("approval", "backend", token_sha256(BACKEND)),
    ),
    staff=(
        StaffEntry("zhang", "张伟", "staff", hash_password(PASSWORD)),
        StaffEntry("wang", "王芳", "staff", hash_password(PASSWORD)),
        StaffEntry("boss", "李主任", "manager", hash_password(PASSWORD)),
    ),
)
HALL = replace(CONFIG, auth=AUTH)

Client = TestClient[Any, Any]


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[tuple[HallServer, Client]]:
    server = await serving(pool, config=HALL)
    async with TestClient(TestServer(build_app(server))) as client:
        yield server, client
    await server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def session(client: Client, staff_id: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/login", json={"staff_id": staff_id, "password": PASSWORD}
    )
    assert response.status == 200, await response.text()
    return bearer((await response.json())["token"])


async def open_window(client: Client, window: str, staff_id: str) -> dict[str, str]:
    headers = await session(client, staff_id)
    response = await client.post(f"/api/v1/windows/{window}/login", json={}, headers=headers)
    assert response.status == 200, await response.text()
    return headers


async def take(client: Client, body: dict[str, Any]) -> Any:
    return await client.post("/api/v1/tickets", json=body, headers=bearer(KIOSK))


async def test_staff_log_in_with_their_password(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.post(
        "/api/v1/auth/login", json={"staff_id": "zhang", "password": PASSWORD}
    )
    body = await response.json()
    assert (response.status, body["role"], body["name"]) == (200, "staff", "张伟")


async def test_a_wrong_password_is_a_401_problem(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.post("/api/v1/auth/login", json={"staff_id": "zhang", "password": "x"})
    assert response.status == 401
    assert response.content_type == "application/problem+json"
    assert (await response.json())["code"] == "bad_credentials"


async def test_a_kiosk_takes_a_ticket_with_its_place_and_text(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    await open_window(client, "W1", "zhang")
    await take(client, {"service": "biz"})
    response = await take(client, {"service": "biz"})
    body = await response.json()
    assert response.status == 201
    assert (body["number"], body["status"], body["people_ahead"]) == ("A002", "waiting", 1)
    assert body["estimated_minutes"] == 10.0
    assert body["seq"] > 0


async def test_taking_a_ticket_needs_credentials(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    response = await client.post("/api/v1/tickets", json={"service": "biz"})
    assert response.status == 401
    assert (await response.json())["code"] == "unauthorized"


async def test_a_service_without_an_open_window_is_refused_with_the_reason(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    response = await take(client, {"service": "biz"})
    assert response.status == 409
    assert (await response.json())["code"] == "no_open_window"


async def test_an_id_card_ticket_keeps_the_identity_encrypted(
    hall: tuple[HallServer, Client],
) -> None:
    server, client = hall
    await open_window(client, "W1", "zhang")
    identity = {"name": "张三", "id_number": "11010519491231002X", "phone": "13812345678"}
    response = await take(client, {"service": "biz", "source": "id_card", "identity": identity})
    assert response.status == 201
    ticket = server.runtime.engine.ticket((await response.json())["id"])
    assert ticket.citizen_ref is not None
    loaded = await server.citizens.load(int(ticket.citizen_ref))
    assert loaded is not None and loaded.id_number == "11010519491231002X"
    raw = await server.pool.fetchrow("SELECT * FROM citizens")
    assert "张三".encode() not in bytes(raw["name_enc"])


async def test_an_id_card_ticket_without_an_id_number_is_refused(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    await open_window(client, "W1", "zhang")
    response = await take(client, {"service": "biz", "source": "id_card"})
    assert (response.status, (await response.json())["code"]) == (422, "identity_required")


async def test_an_id_number_with_a_wrong_check_digit_is_invalid_input(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    identity = {"id_number": "110105194912310021"}
    response = await take(client, {"service": "biz", "source": "id_card", "identity": identity})
    body = await response.json()
    assert (response.status, body["code"]) == (422, "validation_failed")
    assert body["errors"][0]["loc"][:3] == ["body", "identity", "id_number"]


async def test_a_refused_id_card_ticket_keeps_no_personal_data(
    hall: tuple[HallServer, Client],
) -> None:
    server, client = hall
    identity = {"name": "张三", "id_number": "11010519491231002X"}
    response = await take(client, {"service": "biz", "source": "id_card", "identity": identity})
    assert response.status == 409
    assert await server.pool.fetchval("SELECT count(*) FROM citizens") == 0


async def test_a_clerk_works_a_ticket_through_the_window(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    headers = await open_window(client, "W1", "zhang")
    await take(client, {"service": "biz"})
    called = await client.post("/api/v1/windows/W1/call-next", headers=headers)
    assert (await called.json())["state"] == "calling"
    started = await client.post("/api/v1/windows/W1/start", headers=headers)
    assert (await started.json())["state"] == "serving"
    finished = await client.post("/api/v1/windows/W1/finish", headers=headers)
    body = await finished.json()
    assert (body["state"], body["ticket"]) == ("idle", None)


async def test_staff_cannot_act_at_another_clerks_window(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    await open_window(client, "W1", "zhang")
    intruder = await session(client, "wang")
    response = await client.post("/api/v1/windows/W1/call-next", headers=intruder)
    assert response.status == 403


async def test_a_pause_shows_its_message_and_is_audited(hall: tuple[HallServer, Client]) -> None:
    server, client = hall
    headers = await open_window(client, "W1", "zhang")
    response = await client.post(
        "/api/v1/windows/W1/pause", json={"reason": "lunch"}, headers=headers
    )
    body = await response.json()
    assert (body["state"], body["pause_message"]) == ("paused", "午休，13:30 恢复办理")
    row = await server.pool.fetchrow("SELECT * FROM audit_log WHERE action = 'window.pause'")
    assert (row["actor"], row["role"], row["target"]) == ("zhang", "staff", "W1")
    assert row["remote"] is not None


async def test_a_manager_changes_a_group_strategy_live(hall: tuple[HallServer, Client]) -> None:
    server, client = hall
    headers = await session(client, "boss")
    rules = ["priority_groups_first", {"rule": "weighted"}]
    response = await client.put(
        "/api/v1/strategies", json={"scope": "group", "target": "front", "rules": rules},
        headers=headers,
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["windows"] == ["W1", "W2"]
    assert server.runtime.engine.window("W2").strategy.spec.to_json()[-1] == {"rule": "weighted"}
    query = "SELECT count(*) FROM audit_log WHERE action = 'strategy.set'"
    assert await server.pool.fetchval(query) == 1


async def test_staff_may_not_change_strategies(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    headers = await session(client, "zhang")
    response = await client.put("/api/v1/strategies", json={"rules": ["fifo"]}, headers=headers)
    assert response.status == 403


async def test_an_unknown_strategy_rule_is_a_422(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    headers = await session(client, "boss")
    response = await client.put("/api/v1/strategies", json={"rules": ["luck"]}, headers=headers)
    assert (response.status, (await response.json())["code"]) == (422, "bad_request")


async def test_an_unknown_window_is_a_404_problem(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    headers = await session(client, "boss")
    response = await client.post("/api/v1/windows/W99/call-next", headers=headers)
    assert (response.status, (await response.json())["code"]) == (404, "unknown_window")


async def test_the_openapi_document_lists_the_halls_operations(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    document = await (await client.get("/api/v1/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    for path in ("/api/v1/tickets", "/api/v1/windows/{window_id}/call-next", "/api/v1/strategies"):
        assert path in document["paths"]


async def test_readiness_and_metrics_report_the_hall(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    await open_window(client, "W1", "zhang")
    await take(client, {"service": "biz"})
    assert (await client.get("/readyz")).status == 200
    text = await (await client.get("/metrics")).text()
    assert 'hall_waiting_tickets{hall="test",service="biz"} 1.0' in text
    assert "hall_commit_seconds_count" in text
    assert 'hall_events_total{hall="test",type="ticket.issued"} 1.0' in text


MALFORMED = [b"", b"{", b"[]", b"null", b'{"service": 5}', b'{"rules": "fifo"}',
             b'{"reason": {"a": 1}}', b'{"ticket_id": []}', "{\"x\": \"\ud800\"}".encode(
                 "utf-8", "surrogatepass"), b"\xff\xfe", json.dumps({"a": "b" * 70000}).encode()]


async def test_no_malformed_body_gets_a_500_anywhere(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    manager = await session(client, "boss")
    document = await (await client.get("/api/v1/openapi.json")).json()
    for path, operations in document["paths"].items():
        url = path.replace("{window_id}", "W1").replace("{ticket_id}", "nope")
        for method in operations:
            for body in MALFORMED:
                response = await client.request(
                    method.upper(), url, data=body,
                    headers={**manager, "Content-Type": "application/json"},
                )
                assert response.status < 500, (method, path, body[:40], await response.text())


async def test_a_hall_with_an_identity_provider_offers_oidc_login(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_OIDC_SECRET", "s3cret")
    oidc = OidcConfig(
        issuer="http://127.0.0.1:9/idp", client_id="hall", client_secret_env="TEST_OIDC_SECRET",
        redirect_url="http://127.0.0.1:8080/api/v1/auth/oidc/callback",
    )
    server = await serving(pool, config=replace(HALL, auth=replace(AUTH, oidc=oidc)))
    async with TestClient(TestServer(build_app(server))) as client:
        response = await client.get("/api/v1/auth/oidc/start", allow_redirects=False)
        assert (response.status, (await response.json())["code"]) == (502, "oidc_provider_error")
    await server.stop()


async def test_services_list_waiting_counts_estimates_and_ticket_text(
    hall: tuple[HallServer, Client],
) -> None:
    _, client = hall
    await open_window(client, "W1", "zhang")
    await take(client, {"service": "tax"})
    services = {s["id"]: s for s in await (await client.get("/api/v1/services")).json()}
    assert (services["tax"]["waiting"], services["tax"]["open"]) == (1, True)
    assert services["tax"]["estimated_minutes"] == 6.0
    assert (services["fund"]["open"], services["fund"]["estimated_minutes"]) == (False, None)


async def test_tickets_can_be_listed_by_status(hall: tuple[HallServer, Client]) -> None:
    _, client = hall
    headers = await open_window(client, "W1", "zhang")
    for _ in range(3):
        await take(client, {"service": "biz"})
    await client.post("/api/v1/windows/W1/call-next", headers=headers)
    waiting = await (await client.get("/api/v1/tickets?status=waiting", headers=headers)).json()
    assert [t["number"] for t in waiting] == ["A002", "A003"]
    assert [t["people_ahead"] for t in waiting] == [0, 1]
