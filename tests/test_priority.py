"""Priority tickets with a group password (Q2): the configuration, the attempt
limit, and both ways in (MQTT on a real Mosquitto, REST over real HTTP), over a
real database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from hall.config import ConfigError, PriorityGroup, load_hall_config, parse_hall_config
from hall.http import build_app
from hall.priority import (
    TOO_MANY_ATTEMPTS,
    UNKNOWN_GROUP,
    WRONG_PASSWORD,
    PriorityGate,
    PriorityRefused,
)
from queueing import Source
from tests.bus_kit import Bus, hall_on_bus
from tests.hall_kit import serving
from tests.mqtt_kit import Mosquitto
from tests.test_api_hall import KIOSK, bearer, open_window
from tests.test_device_link import DEVICE_HALL, device, log_in_w1, request

FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
"""Cheap argon2 parameters: the hash carries them, so verification is cheap too."""
ELDERLY = "700001"
GROUPS = MappingProxyType({
    "elderly": PriorityGroup("elderly", "老年人", FAST.hash(ELDERLY)),
    "military": PriorityGroup("military", "军人", FAST.hash("700003")),
})
PRIORITY_HALL = replace(DEVICE_HALL, priority_groups=GROUPS)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def refusal(gate: PriorityGate, caller: str, group: str, password: str) -> str:
    with pytest.raises(PriorityRefused) as refused:
        await gate.check(caller, group, password)
    return refused.value.code


# ------------------------------------------------------------- configuration


def config_with(groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "hall": {"id": "h", "name": "厅", "working_hours": ["09:00-17:00"]},
        "areas": [{"id": "a", "name": "A区", "floor": 1}],
        "services": [{"id": "biz", "name": "企业设立", "category": "商事", "prefix": "A"}],
        "windows": [{"id": "w1", "name": "1号窗口", "area": "a", "services": ["biz"]}],
        "priority_groups": groups,
    }


def test_the_demo_hall_has_priority_groups_whose_demo_passwords_match() -> None:
    config = load_hall_config("config/demo-hall.toml")
    assert {"elderly", "disabled", "military"} <= set(config.priority_groups)
    gate = PriorityGate(config.priority_groups)
    assert asyncio.run(gate.check("kiosk-f1", "elderly", "700001")).name.startswith("老年人")


def test_a_clear_priority_password_in_the_file_is_refused() -> None:
    data = config_with([{"id": "elderly", "name": "老年人", "password_hash": "700001"}])
    with pytest.raises(ConfigError) as error:
        parse_hall_config(data, "hall.toml")
    assert "priority_groups[0].password_hash: must be an argon2 hash" in str(error.value)


def test_a_priority_group_listed_twice_is_refused() -> None:
    group = {"id": "elderly", "name": "老年人", "password_hash": FAST.hash("1")}
    with pytest.raises(ConfigError) as error:
        parse_hall_config(config_with([group, group]), "hall.toml")
    assert "priority_groups[1].id: duplicate id 'elderly'" in str(error.value)


# ------------------------------------------------------------------ the gate


async def test_the_right_password_opens_its_group_only() -> None:
    gate = PriorityGate(GROUPS)
    assert (await gate.check("k1", "elderly", ELDERLY)).id == "elderly"
    assert await refusal(gate, "k1", "military", ELDERLY) == WRONG_PASSWORD


async def test_an_unknown_group_is_refused_as_such() -> None:
    assert await refusal(PriorityGate(GROUPS), "k1", "vip", ELDERLY) == UNKNOWN_GROUP


async def test_after_five_failures_a_minute_even_the_right_password_is_refused() -> None:
    clock = Clock()
    gate = PriorityGate(GROUPS, clock=clock)
    for _ in range(5):
        assert await refusal(gate, "k1", "elderly", "000000") == WRONG_PASSWORD
        clock.now += 1
    with pytest.raises(PriorityRefused) as refused:
        await gate.check("k1", "elderly", ELDERLY)
    assert refused.value.code == TOO_MANY_ATTEMPTS
    assert refused.value.retry_after == pytest.approx(55.0)


async def test_the_limit_is_per_caller() -> None:
    gate = PriorityGate(GROUPS, clock=Clock())
    for _ in range(5):
        await refusal(gate, "k1", "elderly", "000000")
    assert (await gate.check("k2", "elderly", ELDERLY)).id == "elderly"


async def test_failures_older_than_a_minute_no_longer_count() -> None:
    clock = Clock()
    gate = PriorityGate(GROUPS, clock=clock)
    for _ in range(5):
        await refusal(gate, "k1", "elderly", "000000")
    clock.now += 60.5
    assert (await gate.check("k1", "elderly", ELDERLY)).id == "elderly"


async def test_a_refusal_is_logged_without_the_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hall.priority")
    gate = PriorityGate(GROUPS, clock=Clock())
    for _ in range(6):
        with contextlib.suppress(PriorityRefused):
            await gate.check("kiosk-7", "elderly", "secret-guess-93")
    assert "kiosk-7" in caplog.text and "elderly" in caplog.text
    assert "secret-guess-93" not in caplog.text


# ---------------------------------------------------------------- over MQTT


@pytest.fixture
async def bus(pool: asyncpg.Pool, mosquitto: Mosquitto) -> AsyncIterator[Bus]:
    async with hall_on_bus(pool, mosquitto, PRIORITY_HALL) as started:
        yield started


def take(request_id: str, password: str, group: str = "elderly") -> dict[str, Any]:
    return {"type": "kiosk.take_ticket", "id": request_id, "service": "biz",
            "priority_group": group, "priority_password": password}


async def test_a_kiosk_takes_a_priority_ticket_with_the_groups_password(bus: Bus) -> None:
    await log_in_w1(bus)
    async with device(bus, "kiosk-1", "reply") as kiosk:
        reply = await request(kiosk, "kiosk-1", take("prio-0000001", ELDERLY))
    assert reply["ok"], reply
    ticket = bus.server.runtime.engine.ticket(reply["result"]["ticket"]["id"])
    assert (ticket.source, ticket.priority_group) == (Source.PRIORITY, "elderly")


async def test_a_wrong_password_over_mqtt_issues_nothing(bus: Bus) -> None:
    await log_in_w1(bus)
    async with device(bus, "kiosk-1", "reply") as kiosk:
        reply = await request(kiosk, "kiosk-1", take("prio-0000002", "123456"))
    assert (reply["ok"], reply["error"]["code"]) == (False, "wrong_priority_password")
    assert list(bus.server.runtime.engine.tickets()) == []


async def test_a_retried_refusal_is_not_another_attempt(bus: Bus) -> None:
    await log_in_w1(bus)
    async with device(bus, "kiosk-1", "reply") as kiosk:
        for _ in range(7):
            again = await request(kiosk, "kiosk-1", take("prio-same-001", "123456"))
        assert again["error"]["code"] == "wrong_priority_password"
        right = await request(kiosk, "kiosk-1", take("prio-0000003", ELDERLY))
    assert right["ok"], right


async def test_a_kiosk_guessing_is_stopped_after_five_tries(bus: Bus) -> None:
    await log_in_w1(bus)
    async with device(bus, "kiosk-1", "reply") as kiosk:
        codes = [
            (await request(kiosk, "kiosk-1", take(f"guess-{n:07d}", f"{n:06d}")))["error"]["code"]
            for n in range(5)
        ]
        locked = await request(kiosk, "kiosk-1", take("guess-right-1", ELDERLY))
    assert codes == ["wrong_priority_password"] * 5
    assert locked["error"]["code"] == "too_many_attempts"
    assert list(bus.server.runtime.engine.tickets()) == []


# ---------------------------------------------------------------- over REST


@pytest.fixture
async def api(pool: asyncpg.Pool) -> AsyncIterator[TestClient[Any, Any]]:
    server = await serving(pool, config=PRIORITY_HALL)
    async with TestClient(TestServer(build_app(server))) as client:
        await open_window(client, "W1", "zhang")
        yield client
    await server.stop()


async def post(client: TestClient[Any, Any], **body: Any) -> tuple[int, Any]:
    response = await client.post("/api/v1/tickets", json={"service": "biz", **body},
                                 headers=bearer(KIOSK))
    return response.status, await response.json()


async def test_a_priority_ticket_over_rest_needs_the_groups_password(
    api: TestClient[Any, Any],
) -> None:
    status, body = await post(api, source="priority", priority_group="elderly",
                              priority_password=ELDERLY)
    assert (status, body["source"]) == (201, "priority")


async def test_a_wrong_priority_password_over_rest_is_a_403(api: TestClient[Any, Any]) -> None:
    status, body = await post(api, source="priority", priority_group="elderly",
                              priority_password="000000")
    assert (status, body["code"]) == (403, "wrong_priority_password")


async def test_a_priority_ticket_without_a_password_is_invalid(api: TestClient[Any, Any]) -> None:
    status, body = await post(api, source="priority", priority_group="elderly")
    assert (status, body["code"]) == (422, "validation_failed")


async def test_rest_guessing_is_stopped_with_retry_after(api: TestClient[Any, Any]) -> None:
    for n in range(5):
        await post(api, source="priority", priority_group="elderly", priority_password=f"{n}")
    response = await api.post("/api/v1/tickets", headers=bearer(KIOSK), json={
        "service": "biz", "source": "priority", "priority_group": "elderly",
        "priority_password": ELDERLY})
    assert response.status == 429
    assert (await response.json())["code"] == "too_many_attempts"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
