"""Citizen notifications (Q6, Q11, D11) against a real database and a fake
gateway: a local HTTP server that records what it got and fails on demand."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hall.auth import hash_password, token_sha256
from hall.config import (
    AuthConfig,
    ConfigError,
    HallConfig,
    StaffEntry,
    TokenEntry,
    parse_hall_config,
)
from hall.http import build_app
from hall.notify import settings
from hall.notify.settings import NotificationsTable
from hall.pii import DataKey, Identity
from hall.server import HallServer
from queueing import Source
from tests.hall_kit import CONFIG, ManualClock

KIOSK = "kiosk-secret-token"
BACKEND = "backend-secret-token"
PASSWORD = "window-pass-1"
PHONE = "13812345678"
AUTH = AuthConfig(
    tokens=(TokenEntry("kiosk-1", "device", token_sha256(KIOSK)),
            TokenEntry("approval", "backend", token_sha256(BACKEND))),
    staff=(StaffEntry("zhang", "张伟", "staff", hash_password(PASSWORD)),
           StaffEntry("boss", "李主任", "manager", hash_password(PASSWORD))),
)
Client = TestClient[Any, Any]


# --- the fake gateway ------------------------------------------------------------


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class FakeGateway:
    """Answers 200 unless told otherwise: ``script`` holds what the next requests
    get (an HTTP status, ``"timeout"``), ``stop`` makes the port refuse connections."""

    received: list[Received] = field(default_factory=list)
    script: list[int | str] = field(default_factory=list)
    answer: dict[str, Any] = field(default_factory=lambda: {"code": "OK"})
    port: int = 0
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        text = await request.text()
        body: Any = json.loads(text) if request.content_type == "application/json" else \
            dict(await request.post())
        self.received.append(Received(request.path, dict(request.query), dict(request.headers),
                                      body, time.monotonic()))
        step = self.script.pop(0) if self.script else 200
        if step == "timeout":
            await asyncio.sleep(5)
        if isinstance(step, int) and step != 200:
            return web.json_response({"code": "ERR"}, status=step)
        return web.json_response(self.answer)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        if not self.port:
            self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    fake = FakeGateway()
    await fake.start()
    yield fake
    await fake.stop()


# --- a hall that notifies -----------------------------------------------------------

SMS_TEXT = "您已取{number}号（{service_name}），前面还有{ahead}人，预计等候{minutes}分钟。"


def notifications(url: str, **changes: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "channels": {"sms": "sms-http", "wechat": "wechat"},
        "default_channels": ["sms"],
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 0.4,
        "max_attempts": 5,
        "gateways": [
            {"id": "sms-http", "kind": "http", "method": "POST", "url": f"{url}/sms/send",
             "headers": {"Authorization": "Bearer {token}"},
             "secrets": {"token": "TEST_SMS_TOKEN"},
             "body": {"mobile": "{phone}", "template": "{template_id}", "params": "{params}",
                      "content": "{text}", "request_id": "{idempotency_key}"},
             "ok_field": "code", "ok_value": "OK", "timeout_seconds": 0.3},
            {"id": "wechat", "kind": "http", "preset": "wechat_template",
             "url": f"{url}/cgi-bin/message/template/send?access_token={{access_token}}",
             "secrets": {"access_token": "TEST_WECHAT_TOKEN"}},
        ],
        "rules": [
            {"rule": "ticket_issued", "text": SMS_TEXT, "templates": {"sms": "SMS_ISSUED"}},
            {"rule": "ahead", "text": "您的{number}号前面还有{ahead}人，预计等候{minutes}分钟，"
             "请到{service_name}窗口附近等候。", "templates": {"sms": "SMS_AHEAD"}},
            {"rule": "called", "text": "请{number}号到{window}办理。",
             "channels": ["sms", "wechat"], "templates": {"sms": "SMS_CALL", "wechat": "WX-CALL"}},
            {"rule": "booked", "text": "您已预约{slot}{service_name}，预约码{code}。"},
            {"rule": "case_progress", "text": "您的办件{case_id}：{status}。"},
            {"rule": "case_done", "text": "您的办件{case_id}已办结，请到窗口领取。"},
        ],
        "services": [{"service": "biz", "ahead": 3}],
    }
    table.update(changes)
    return table


def hall_config(table: dict[str, Any]) -> HallConfig:
    built = settings.build(NotificationsTable.model_validate(table))
    return replace(CONFIG, auth=AUTH, notifications=built)


@dataclass
class Hall:
    server: HallServer
    client: Client
    key: DataKey


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMS_TOKEN", "sms-token-1")
    monkeypatch.setenv("TEST_WECHAT_TOKEN", "wx-token-1")


async def open_hall(pool: asyncpg.Pool, config: HallConfig, key: DataKey | None = None
                    ) -> Hall:
    key = key or DataKey.generate()
    server = HallServer.assemble(config, pool, ManualClock(), key)
    await server.start()
    client: Client = TestClient(TestServer(build_app(server)))
    await client.start_server()
    return Hall(server, client, key)


async def close_hall(hall: Hall) -> None:
    await hall.client.close()
    await hall.server.stop()


@pytest.fixture
async def hall(pool: asyncpg.Pool, gateway: FakeGateway) -> AsyncIterator[Hall]:
    opened = await open_hall(pool, hall_config(notifications(gateway.url)))
    await opened.server.runtime.execute("login", "W1", "zhang")
    yield opened
    await close_hall(opened)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def manager(client: Client) -> dict[str, str]:
    response = await client.post("/api/v1/auth/login",
                                 json={"staff_id": "boss", "password": PASSWORD})
    return bearer((await response.json())["token"])


async def issue(server: HallServer, phone: str | None = PHONE, service: str = "biz",
                identity: Identity | None = None) -> str:
    citizen = None
    if phone is not None or identity is not None:
        citizen = await server.citizens.save(identity or Identity(phone=phone))
    stored = await server.runtime.execute(
        "issue", service, Source.PHONE if phone else Source.WALK_IN,
        citizen_ref=None if citizen is None else str(citizen))
    ticket_id: str = stored[0].event.ticket_id  # type: ignore[attr-defined]
    return ticket_id


async def until(check: Callable[[], Awaitable[bool]] | Callable[[], bool],
                seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met in time")


async def outbox(pool: asyncpg.Pool, rule: str | None = None) -> list[asyncpg.Record]:
    return list(await pool.fetch(
        "SELECT * FROM outbox WHERE $1::text IS NULL OR rule = $1 ORDER BY id", rule))


def sms_to(gateway: FakeGateway, template: str) -> list[Received]:
    return [r for r in gateway.received
            if r.path == "/sms/send" and r.body.get("template") == template]


# --- the tests ---------------------------------------------------------------------


async def test_a_ticket_issued_at_the_kiosk_is_texted_with_its_rendered_template(
    hall: Hall, gateway: FakeGateway, pool: asyncpg.Pool,
) -> None:
    response = await hall.client.post(
        "/api/v1/tickets", headers=bearer(KIOSK),
        json={"service": "biz", "source": "phone", "identity": {"phone": PHONE}})
    assert response.status == 201
    await until(lambda: len(gateway.received) == 1)
    [got] = gateway.received
    assert got.body["mobile"] == PHONE
    assert got.body["content"] == "您已取A001号（企业设立登记），前面还有0人，预计等候0分钟。"
    assert got.body["template"] == "SMS_ISSUED"
    assert got.body["params"] == {"number": "A001", "service_name": "企业设立登记",
                                  "ahead": "0", "minutes": "0"}
    assert got.headers["Authorization"] == "Bearer sms-token-1"
    assert got.headers["Idempotency-Key"] == got.body["request_id"]
    await until(lambda: _status(pool, "sent"))


async def _status(pool: asyncpg.Pool, status: str) -> bool:
    rows = await outbox(pool)
    return bool(rows) and all(row["status"] == status for row in rows)


async def test_silent_calling_tells_a_citizen_once_when_three_are_ahead(
    hall: Hall, gateway: FakeGateway, pool: asyncpg.Pool,
) -> None:
    server = hall.server
    for _ in range(5):
        await issue(server, phone=None)
    await issue(server)  # A006, five ahead
    for _ in range(5):  # the notifier reads each step before the next, as in a real hall
        await server.runtime.execute("call_next", "W1")
        await server.runtime.execute("finish", "W1")
        await until(lambda: server.notifications.intake.cursor
                    >= server.runtime.committer.next_seq - 1)
    await until(lambda: len(sms_to(gateway, "SMS_AHEAD")) == 1)
    await asyncio.sleep(0.2)
    [told] = sms_to(gateway, "SMS_AHEAD")
    assert told.body["content"].startswith("您的A006号前面还有3人，预计等候")
    assert len(await outbox(pool, "ahead")) == 1


async def test_a_gateway_that_is_down_is_retried_with_backoff_until_it_is_back(
    gateway: FakeGateway, pool: asyncpg.Pool,
) -> None:
    """Attempts to spare: the gateway comes back a moment after the second refusal,
    and on a busy machine a third may be refused before it listens."""
    hall = await open_hall(pool, hall_config(notifications(gateway.url, max_attempts=8)))
    try:
        await hall.server.runtime.execute("login", "W1", "zhang")
        await gateway.stop()  # connection refused
        await issue(hall.server)
        await until(lambda: _attempts(pool, 2))
        gateway.script = [500, "timeout"]
        await gateway.start()
        await until(lambda: _status(pool, "sent"))
    finally:
        await close_hall(hall)
    rows = await pool.fetch("SELECT * FROM outbox_attempts ORDER BY id")
    statuses = [row["status"] for row in rows]
    assert statuses[-1] == "sent" and set(statuses[:-1]) == {"error"}
    errors = [row["error"] for row in rows[:-1]]
    assert errors[0].startswith("connection failed")
    assert "HTTP 500" in errors and any(e.startswith("timed out") for e in errors)
    for n, (before, after) in enumerate(itertools.pairwise(rows), start=1):
        least = 0.5 * min(0.4, 0.05 * 2 ** (n - 1))  # jitter keeps at least half the backoff
        assert (after["at"] - before["at"]) >= timedelta(seconds=least * 0.95)
    assert len(gateway.received) == 3  # the 500, the timeout, the delivery


async def _attempts(pool: asyncpg.Pool, n: int) -> bool:
    return int(await pool.fetchval("SELECT count(*) FROM outbox_attempts")) >= n


async def test_after_max_attempts_a_message_is_failed_shown_and_can_be_retried(
    hall: Hall, gateway: FakeGateway, pool: asyncpg.Pool,
) -> None:
    gateway.script = [503] * 5
    ticket_id = await issue(hall.server)
    await until(lambda: _status(pool, "failed"))
    headers = await manager(hall.client)
    response = await hall.client.get("/api/v1/notifications?status=failed", headers=headers)
    [shown] = await response.json()
    assert (shown["ticket_id"], shown["rule"], shown["attempts"]) == (ticket_id,
                                                                     "ticket_issued", 5)
    assert shown["to"] == "138****5678"
    assert [t["http_status"] for t in shown["tries"]] == [503] * 5
    assert [t["status"] for t in shown["tries"]] == ["error"] * 4 + ["failed"]
    retried = await hall.client.post(f"/api/v1/notifications/{shown['id']}/retry",
                                     headers=headers)
    assert retried.status == 200
    await until(lambda: _status(pool, "sent"))
    again = await hall.client.post(f"/api/v1/notifications/{shown['id']}/retry",
                                   headers=headers)
    assert (again.status, (await again.json())["code"]) == (409, "notification_not_failed")


async def test_a_restarted_hall_delivers_its_pending_messages_once(
    pool: asyncpg.Pool, gateway: FakeGateway,
) -> None:
    await gateway.stop()
    down = hall_config(notifications(gateway.url, retry_base_seconds=30.0))
    first = await open_hall(pool, down)
    await first.server.runtime.execute("login", "W1", "zhang")
    await issue(first.server)
    await issue(first.server, phone="13900001111")
    await until(lambda: _attempts(pool, 2))
    await close_hall(first)
    # the second message as if the hall died between the gateway's answer and its record
    await pool.execute("UPDATE outbox SET status = 'sending', claimed_until = now() + "
                       "interval '1 hour' WHERE id = (SELECT max(id) FROM outbox)")
    await gateway.start()
    second = await open_hall(pool, hall_config(notifications(gateway.url)), first.key)
    try:
        await until(lambda: _status(pool, "sent"))
        await asyncio.sleep(0.3)
        assert sorted(r.body["mobile"] for r in gateway.received) == ["13812345678",
                                                                      "13900001111"]
        statuses = [r["status"] for r in await pool.fetch(
            "SELECT status FROM outbox_attempts ORDER BY id")]
        assert statuses.count("interrupted") == 1 and statuses.count("sent") == 2
    finally:
        await close_hall(second)


async def test_the_same_event_seen_twice_makes_one_message(
    hall: Hall, gateway: FakeGateway, pool: asyncpg.Pool,
) -> None:
    await issue(hall.server)
    await until(lambda: _status(pool, "sent"))
    events = await hall.server.runtime.store.read_since(0)
    await hall.server.notifications.intake.process(events)
    await pool.execute("UPDATE notify_cursor SET last_seq = 0")
    hall.server.notifications.intake.cursor = 0
    hall.server.notifications.intake._events_wake.set()
    await until(lambda: _cursor_at(pool, events[-1].seq))
    await asyncio.sleep(0.2)
    assert len(await outbox(pool)) == 1
    assert len(gateway.received) == 1


async def _cursor_at(pool: asyncpg.Pool, seq: int) -> bool:
    return int(await pool.fetchval("SELECT last_seq FROM notify_cursor")) >= seq


async def test_the_wechat_channel_sends_a_template_message(
    hall: Hall, gateway: FakeGateway, pool: asyncpg.Pool,
) -> None:
    gateway.answer = {"code": "OK", "errcode": 0, "errmsg": "ok", "msgid": 200228332}
    ticket_id = await issue(hall.server)
    await until(lambda: _status(pool, "sent"))
    response = await hall.client.put(
        f"/api/v1/tickets/{ticket_id}/notifications", headers=bearer(KIOSK),
        json={"channels": ["wechat"], "wechat_openid": "oABCD1234xyz"})
    assert response.status == 200
    assert await response.json() == {"ticket_id": ticket_id, "channels": ["wechat"],
                                     "wechat": True}
    await hall.server.runtime.execute("call_next", "W1")
    await until(lambda: any(r.path.startswith("/cgi-bin") for r in gateway.received))
    [sent] = [r for r in gateway.received if r.path.startswith("/cgi-bin")]
    assert sent.path == "/cgi-bin/message/template/send"
    assert sent.query == {"access_token": "wx-token-1"}
    assert sent.body == {"touser": "oABCD1234xyz", "template_id": "WX-CALL",
                         "data": {"number": {"value": "A001"}, "window": {"value": "1号窗口"}}}
    assert sms_to(gateway, "SMS_CALL") == []  # the citizen chose WeChat only
    await until(lambda: _status(pool, "sent"))


async def test_a_wechat_error_code_is_not_a_delivery(
    hall: Hall, gateway: FakeGateway, pool: asyncpg.Pool,
) -> None:
    gateway.answer = {"code": "OK", "errcode": 40001, "errmsg": "invalid credential"}
    ticket_id = await issue(hall.server)
    await hall.server.notifications.contacts.choose(
        int(hall.server.runtime.engine.ticket(ticket_id).citizen_ref or 0), ["wechat"],
        "oABCD1234xyz")
    await hall.server.runtime.execute("call_next", "W1")
    await until(lambda: _attempts(pool, 2))
    error = await pool.fetchval("SELECT error FROM outbox_attempts WHERE status = 'error'"
                                " ORDER BY id LIMIT 1")
    assert error == "gateway answered errcode=40001"


async def test_a_citizen_without_a_phone_gets_no_sms(
    hall: Hall, gateway: FakeGateway, pool: asyncpg.Pool,
) -> None:
    silent = await issue(hall.server, phone=None,
                         identity=Identity(name="张三", id_number="11010519491231002X"))
    texted = await issue(hall.server, phone="13900002222")
    await until(lambda: _status(pool, "sent"))
    assert [row["ticket_id"] for row in await outbox(pool)] == [texted]
    assert silent != texted and len(gateway.received) == 1


async def test_a_booking_imported_from_the_backend_is_confirmed_by_sms(
    hall: Hall, gateway: FakeGateway,
) -> None:
    response = await hall.client.post(
        "/api/v1/backend/appointments", headers=bearer(BACKEND),
        json={"appointments": [{"code": "YY20261125", "service": "biz",
                                "slot_start": "2026-11-25T09:30:00+08:00",
                                "slot_end": "2026-11-25T10:00:00+08:00",
                                "citizen": {"phone": PHONE}}]})
    assert response.status == 200, await response.text()
    await until(lambda: len(gateway.received) == 1)
    assert gateway.received[0].body["content"] == \
        "您已预约11月25日 09:30企业设立登记，预约码YY20261125。"


async def test_case_progress_and_completion_reach_the_citizen(
    hall: Hall, gateway: FakeGateway,
) -> None:
    ticket_id = await issue(hall.server)
    await until(lambda: len(gateway.received) == 1)
    for status in ("受理", "done"):
        response = await hall.client.post(
            "/api/v1/backend/cases/C-1001/progress", headers=bearer(BACKEND),
            json={"ticket_id": ticket_id, "status": status})
        assert response.status == 201
    await until(lambda: len(gateway.received) == 3)
    assert [r.body["content"] for r in gateway.received[1:]] == [
        "您的办件C-1001：受理。", "您的办件C-1001已办结，请到窗口领取。"]


async def test_outbox_counts_are_in_the_metrics(hall: Hall, pool: asyncpg.Pool) -> None:
    await issue(hall.server)
    await until(lambda: _status(pool, "sent"))
    await until(lambda: hall.server.notifications.counts.get("sent") == 1)
    body = await (await hall.client.get("/metrics")).text()
    assert 'hall_notifications{hall="test",status="sent"} 1.0' in body
    assert 'hall_notification_attempts_total{gateway="sms-http",hall="test",outcome="sent"}' \
        in body


async def test_staff_cannot_read_the_notifications(hall: Hall) -> None:
    response = await hall.client.post("/api/v1/auth/login",
                                      json={"staff_id": "zhang", "password": PASSWORD})
    headers = bearer((await response.json())["token"])
    listed = await hall.client.get("/api/v1/notifications", headers=headers)
    assert listed.status == 403


async def test_a_ticket_without_a_citizen_has_no_channels_to_choose(hall: Hall) -> None:
    ticket_id = await issue(hall.server, phone=None)
    response = await hall.client.put(f"/api/v1/tickets/{ticket_id}/notifications",
                                     headers=bearer(KIOSK), json={"channels": ["sms"]})
    assert (response.status, (await response.json())["code"]) == (409,
                                                                  "ticket_without_citizen")


def test_a_placeholder_no_rule_fills_is_a_config_error() -> None:
    data = {
        "hall": {"id": "h", "name": "大厅", "working_hours": ["09:00-17:00"]},
        "areas": [{"id": "a", "name": "A区", "floor": 1}],
        "services": [{"id": "biz", "name": "企业", "category": "c", "prefix": "A"}],
        "windows": [{"id": "w1", "name": "1号", "area": "a", "services": ["biz"]}],
        "notifications": {
            "channels": {"sms": "log"},
            "gateways": [{"id": "log", "kind": "log"}],
            "rules": [{"rule": "called", "text": "请{numbr}号到{window}"}],
            "services": [{"service": "nope"}],
        },
    }
    with pytest.raises(ConfigError) as raised:
        parse_hall_config(data, "hall.toml")
    text = str(raised.value)
    assert "hall.toml: notifications.rules[0].text: {numbr} is not a value of 'called'" in text
    assert "notifications.services[0].service: unknown service 'nope'" in text


def test_a_secret_written_into_the_file_is_refused() -> None:
    with pytest.raises(ValueError, match="must name an environment variable"):
        NotificationsTable.model_validate(
            {"gateways": [{"id": "g", "kind": "http", "url": "https://sms.example.cn",
                           "secrets": {"token": "s3cr3t-value"}}]})
