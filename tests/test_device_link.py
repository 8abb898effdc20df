"""The device bus end to end: devices on a real Mosquitto, the hall's link,
the engine and PostgreSQL behind it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import aiomqtt
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devices.messages import EXAMPLES
from devices.topics import DeviceKind
from hall import device_link
from hall.config import DeviceEntry
from hall.http import build_app
from tests.bus_kit import Bus, hall_on_bus
from tests.mqtt_kit import Mosquitto, mqtt_client, next_message
from tests.test_api_hall import HALL, PASSWORD, session

SPECS = (
    DeviceEntry("kiosk-1", DeviceKind.KIOSK, "一楼取号机", area="F1A"),
    DeviceEntry("term-w1", DeviceKind.CALL_TERMINAL, "1号窗口呼叫器", area="F1A", window="W1"),
    DeviceEntry("eval-w1", DeviceKind.EVALUATION_TERMINAL, "1号窗口评价器", area="F1A",
                window="W1"),
    DeviceEntry("screen-w1", DeviceKind.WINDOW_SCREEN, "1号窗口屏", area="F1A", screen="W1"),
    DeviceEntry("board-1", DeviceKind.HALL_BOARD, "一楼综合屏", area="F1A"),
    DeviceEntry("voice-1", DeviceKind.ANNOUNCER, "一楼广播", area="F1A"),
)
DEVICE_HALL = replace(HALL, devices=SPECS)


@pytest.fixture
async def bus(pool: asyncpg.Pool, mosquitto: Mosquitto) -> AsyncIterator[Bus]:
    async with hall_on_bus(pool, mosquitto, DEVICE_HALL) as started:
        yield started


@contextlib.asynccontextmanager
async def device(bus: Bus, device_id: str, *channels: str) -> AsyncIterator[aiomqtt.Client]:
    async with mqtt_client(bus.broker, device_id) as client:
        for channel in channels:
            await client.subscribe(f"hall/test/{device_id}/{channel}", qos=1)
        yield client


OTHERS: dict[int, list[dict[str, Any]]] = {}
"""Messages a device got while it waited for a reply, per client, in order."""


async def request(client: aiomqtt.Client, device_id: str, body: dict[str, Any]) -> dict[str, Any]:
    await client.publish(f"hall/test/{device_id}/event", json.dumps(body), qos=1)
    while True:
        message = await next_message(client)
        payload: dict[str, Any] = json.loads(message.payload)  # type: ignore[arg-type]
        if str(message.topic).endswith("/reply"):
            return payload
        OTHERS.setdefault(id(client), []).append(payload)


async def received(client: aiomqtt.Client) -> dict[str, Any]:
    """The next message that is not a reply, including any that came before one."""
    waiting = OTHERS.get(id(client))
    if waiting:
        return waiting.pop(0)
    message: dict[str, Any] = json.loads((await next_message(client)).payload)  # type: ignore[arg-type]
    return message


async def log_in_w1(bus: Bus) -> None:
    async with device(bus, "term-w1", "reply") as terminal:
        reply = await request(terminal, "term-w1", {
            "type": "terminal.login", "id": "login-0001", "staff_id": "zhang",
            "password": PASSWORD})
        assert reply["ok"], reply


async def take_and_call(bus: Bus, suffix: str) -> dict[str, Any]:
    """A ticket taken at the kiosk and called at W1; the call's reply."""
    async with device(bus, "kiosk-1", "reply") as kiosk:
        await request(kiosk, "kiosk-1", {"type": "kiosk.take_ticket", "id": f"take-{suffix}",
                                         "service": "biz"})
    async with device(bus, "term-w1", "reply") as terminal:
        return await request(terminal, "term-w1", {"type": "terminal.call_next",
                                                   "id": f"call-{suffix}"})


async def test_a_kiosk_takes_a_ticket_and_is_told_to_print_it(bus: Bus) -> None:
    await log_in_w1(bus)
    async with device(bus, "kiosk-1", "reply", "cmd") as kiosk:
        reply = await request(kiosk, "kiosk-1", {
            "type": "kiosk.take_ticket", "id": "take-0000001", "service": "biz"})
        assert reply["ok"] and reply["result"]["ticket"]["number"] == "A001"
        job = await received(kiosk)
    assert (job["type"], job["id"], job["ticket"]["number"]) == (
        "printer.print", "take-0000001", "A001")


async def test_a_reply_is_on_the_wire_before_the_views_its_change_causes_are_drawn(
    bus: Bus, monkeypatch: pytest.MonkeyPatch,
) -> None:
    await log_in_w1(bus)
    steps: list[str] = []
    publish, write_now = device_link._publish, device_link._write_now

    def handed(paho: Any, item: Any) -> None:
        steps.append(item.topic)
        publish(paho, item)

    def written(paho: Any) -> None:
        steps.append("write")
        write_now(paho)

    draw = bus.link._draw_due

    def drawn() -> None:
        steps.append("draw")
        draw()

    monkeypatch.setattr(device_link, "_publish", handed)
    monkeypatch.setattr(device_link, "_write_now", written)
    monkeypatch.setattr(bus.link, "_draw_due", drawn)
    reply = await take_and_call(bus, "wire-01")
    assert reply["ok"], reply
    after = steps[steps.index("hall/test/term-w1/reply"):]
    assert after.index("write") < after.index("draw"), steps


async def test_a_retried_request_gets_the_same_answer_and_makes_one_ticket(bus: Bus) -> None:
    await log_in_w1(bus)
    body = {"type": "kiosk.take_ticket", "id": "take-retry-01", "service": "biz"}
    async with device(bus, "kiosk-1", "reply") as kiosk:
        first = await request(kiosk, "kiosk-1", body)
        again = await request(kiosk, "kiosk-1", body)
    assert first == again
    assert len(list(bus.server.runtime.engine.tickets())) == 1
    kept = await bus.server.pool.fetchval("SELECT count(*) FROM device_replies")
    assert kept >= 1


async def test_a_call_terminal_calls_and_the_window_screen_shows_it(bus: Bus) -> None:
    await log_in_w1(bus)
    reply = await take_and_call(bus, "0000s01")
    assert reply["result"]["window"]["number"] == "A001"
    async with device(bus, "screen-w1", "display") as screen:
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            shown = json.loads((await next_message(screen)).payload)  # type: ignore[arg-type]
            if shown["positions"][0]["number"] == "A001":
                break
            assert asyncio.get_running_loop().time() < deadline
    position = shown["positions"][0]
    assert (position["state"], position["staff_name"]) == ("calling", "张伟")


async def test_a_call_is_announced_and_shown_on_the_hall_board(bus: Bus) -> None:
    await log_in_w1(bus)
    async with device(bus, "voice-1", "cmd") as voice, device(bus, "board-1", "display") as board:
        await take_and_call(bus, "000v001")
        said = await received(voice)
        assert said["text"] == "请A001号到1号窗口办理"
        while True:
            shown = json.loads((await next_message(board)).payload)  # type: ignore[arg-type]
            if shown["recent"]:
                break
    assert shown["recent"][0] == {"number": "A001", "window_name": "1号窗口"}


async def test_an_unknown_device_is_refused_and_quarantined(bus: Bus) -> None:
    async with device(bus, "stranger", "reply") as stranger:
        reply = await request(stranger, "stranger", {"type": "kiosk.services",
                                                     "id": "who-am-i-01"})
    assert (reply["ok"], reply["error"]["code"]) == (False, "unknown_device")
    status = bus.link.registry.status("stranger")
    assert status is not None and status.quarantined


async def test_a_kiosk_may_not_call_tickets(bus: Bus) -> None:
    async with device(bus, "kiosk-1", "reply") as kiosk:
        reply = await request(kiosk, "kiosk-1", {"type": "terminal.call_next",
                                                 "id": "sneaky-0001"})
    assert reply["error"]["code"] == "not_allowed"


async def test_a_malformed_request_gets_an_error_and_the_link_goes_on(bus: Bus) -> None:
    async with device(bus, "kiosk-1", "reply") as kiosk:
        await kiosk.publish("hall/test/kiosk-1/event", b"\xff\xfe garbage", qos=1)
        bad = await request(kiosk, "kiosk-1", {"type": "kiosk.take_ticket", "id": "bad-0000001",
                                               "service": "biz", "colour": "red"})
        assert (bad["ok"], bad["error"]["code"]) == (False, "invalid_message")
        good = await request(kiosk, "kiosk-1", {"type": "kiosk.services", "id": "list-000001"})
    assert good["ok"] and any(s["id"] == "biz" for s in good["result"]["services"])


async def test_a_kiosk_out_of_paper_issues_nothing(bus: Bus) -> None:
    await log_in_w1(bus)
    async with device(bus, "kiosk-1", "reply") as kiosk:
        await kiosk.publish("hall/test/kiosk-1/state", json.dumps(
            {"v": 1, "health": {"paper": "out"}}), qos=1, retain=True)
        await asyncio.sleep(0.2)
        reply = await request(kiosk, "kiosk-1", {"type": "kiosk.take_ticket",
                                                 "id": "take-nopaper1", "service": "biz"})
    assert reply["error"]["code"] == "printer_offline"
    assert list(bus.server.runtime.engine.tickets()) == []


async def test_devices_online_are_counted_in_the_metrics(bus: Bus) -> None:
    async with device(bus, "kiosk-1") as kiosk:
        await kiosk.publish("hall/test/kiosk-1/status", json.dumps(
            {"v": 1, "state": "online", "kind": "kiosk", "firmware": "1.2"}), qos=1, retain=True)
        await asyncio.sleep(0.3)
        text = bus.server.metrics.render().decode()
    assert 'hall_devices_online{hall="test",kind="kiosk"} 1.0' in text


async def test_a_rating_is_tied_to_ticket_window_and_staff(bus: Bus) -> None:
    await log_in_w1(bus)
    async with device(bus, "kiosk-1", "reply") as kiosk:
        taken = await request(kiosk, "kiosk-1", {"type": "kiosk.take_ticket",
                                                 "id": "take-000e001", "service": "biz"})
    ticket_id = taken["result"]["ticket"]["id"]
    async with device(bus, "eval-w1", "reply", "cmd") as evaluator:
        async with device(bus, "term-w1", "reply") as terminal:
            await request(terminal, "term-w1", {"type": "terminal.call_next", "id": "call-000e001"})
            await request(terminal, "term-w1", {"type": "terminal.evaluate", "id": "ask-0000e01"})
        asked = await received(evaluator)
        assert (asked["type"], asked["ticket_id"]) == ("evaluation.request", ticket_id)
        rated = await request(evaluator, "eval-w1", {
            "type": "evaluation.rate", "id": "rate-0000e01", "ticket_id": ticket_id,
            "rating": 5, "reasons": ["态度好"]})
    assert rated["ok"], rated
    rows = await bus.link.store.evaluations(ticket_id)
    assert [(r["window_id"], r["staff_id"], r["rating"], r["reasons"]) for r in rows] == [
        ("W1", "zhang", 5, ["态度好"])]


async def test_a_kiosk_checks_in_an_appointment_by_its_code(bus: Bus) -> None:
    slot = "2026-11-24T09:30:00+08:00"
    await bus.server.backend.import_appointments(
        [("Q7K2M9", "biz", datetime.fromisoformat(slot),
          datetime.fromisoformat("2026-11-24T10:00:00+08:00"), None)])
    await log_in_w1(bus)
    body = {"type": "kiosk.take_ticket", "id": "checkin-0001", "appointment_code": "Q7K2M9"}
    async with device(bus, "kiosk-1", "reply") as kiosk:
        first = await request(kiosk, "kiosk-1", body)
        retry = await request(kiosk, "kiosk-1", body)
        other = await request(kiosk, "kiosk-1", {**body, "id": "checkin-0002"})
    assert first["ok"] and first == retry
    ticket = bus.server.runtime.engine.ticket(first["result"]["ticket"]["id"])
    assert (ticket.source.value, ticket.appointment_slot) == ("appointment",
                                                              datetime.fromisoformat(slot))
    assert other["error"]["code"] == "appointment_not_bookable"


async def test_a_manager_approves_a_quarantined_device_and_it_is_served(bus: Bus) -> None:
    async with device(bus, "kiosk-9", "reply") as stranger:
        await stranger.publish("hall/test/kiosk-9/status", json.dumps(
            {"v": 1, "state": "online", "kind": "kiosk"}), qos=1, retain=True)
        refused = await request(stranger, "kiosk-9", {"type": "kiosk.services",
                                                      "id": "hello-0000001"})
        assert refused["error"]["code"] == "unknown_device"
        async with TestClient(TestServer(build_app(bus.server))) as client:
            manager = await session(client, "boss")
            listed = await (await client.get("/api/v1/devices", headers=manager)).json()
            assert any(a["device_id"] == "kiosk-9" and a["problem"] == "quarantined"
                       for a in listed["alerts"])
            approved = await client.post(
                "/api/v1/devices/kiosk-9/approve",
                json={"kind": "kiosk", "name": "临时取号机", "area": "F1A"}, headers=manager)
            assert approved.status == 200, await approved.text()
        served = await request(stranger, "kiosk-9", {"type": "kiosk.services",
                                                     "id": "hello-0000002"})
    assert served["ok"]
    kept = await bus.server.pool.fetchval("SELECT approved_by FROM device_approvals")
    assert kept == "boss"


async def test_a_flooding_device_is_throttled_and_the_others_are_not(bus: Bus) -> None:
    async with device(bus, "kiosk-1", "reply") as flooder, \
            device(bus, "term-w1", "reply") as terminal:
        for number in range(400):
            await flooder.publish("hall/test/kiosk-1/event", json.dumps(
                {"type": "kiosk.services", "id": f"flood-{number:06d}"}), qos=0)
        started = asyncio.get_running_loop().time()
        reply = await request(terminal, "term-w1", {
            "type": "terminal.login", "id": "login-during-flood", "staff_id": "zhang",
            "password": PASSWORD})
        assert reply["ok"]
        assert asyncio.get_running_loop().time() - started < 2.0
    assert bus.link._buckets["kiosk-1"].dropped > 300


async def replies_until_quiet(client: aiomqtt.Client, quiet: float) -> list[dict[str, Any]]:
    replies: list[dict[str, Any]] = []
    while True:
        try:
            async with asyncio.timeout(quiet):
                message = await anext(aiter(client.messages))
        except TimeoutError:
            return replies
        replies.append(json.loads(message.payload))  # type: ignore[arg-type]


async def test_a_device_bursting_past_its_rate_is_told_at_once_and_only_once_a_second(
    bus: Bus,
) -> None:
    burst = [f"burst-{number:06d}" for number in range(int(device_link.BURST) + 30)]
    async with device(bus, "kiosk-1", "reply") as kiosk:
        for request_id in burst:
            await kiosk.publish("hall/test/kiosk-1/event", json.dumps(
                {"type": "kiosk.services", "id": request_id}), qos=0)
        replies = await replies_until_quiet(kiosk, quiet=1.5)
    limited = [r for r in replies if not r["ok"]]
    assert [r["error"]["code"] for r in limited] == ["rate_limited"]
    assert "ask again" in limited[0]["error"]["message"]
    served = {r["re"] for r in replies if r["ok"]}
    assert limited[0]["re"] in burst and limited[0]["re"] not in served
    assert device_link.BURST <= len(served) < len(burst)


async def test_a_rate_limited_request_is_served_when_asked_again_later(bus: Bus) -> None:
    async with device(bus, "kiosk-1", "reply") as kiosk:
        for number in range(int(device_link.BURST) + 10):
            await kiosk.publish("hall/test/kiosk-1/event", json.dumps(
                {"type": "kiosk.services", "id": f"burst-{number:06d}"}), qos=0)
        replies = await replies_until_quiet(kiosk, quiet=1.5)
        limited = [r["re"] for r in replies if not r["ok"]]
        assert len(limited) == 1
        again = await request(kiosk, "kiosk-1", {"type": "kiosk.services", "id": limited[0]})
    assert again["ok"] and again["result"]["services"]


GARBAGE_CHANNELS = ["event", "status", "state", "reply", "cmd", "display", "nope", ""]


async def test_garbage_on_any_channel_never_breaks_the_link(bus: Bus) -> None:
    rng = random.Random(20261124)
    examples = [json.dumps(example.message).encode() for example in EXAMPLES.values()]
    async with device(bus, "attacker") as attacker:
        for number in range(600):
            if number % 2:
                payload = bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 64)))
            else:
                mutated = bytearray(rng.choice(examples))
                for _ in range(rng.randint(1, 4)):
                    mutated[rng.randrange(len(mutated))] = rng.getrandbits(8)
                payload = bytes(mutated)
            channel = rng.choice(GARBAGE_CHANNELS)
            source = rng.choice(["kiosk-1", "term-w1", "stranger-7"])
            await attacker.publish(f"hall/test/{source}/{channel}", payload, qos=0)
            if number % 50 == 0:
                await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)
    failures = [t for t in list(bus.link._tasks) if t.done() and t.exception() is not None]
    assert failures == []
    bus.link._buckets.clear()
    async with device(bus, "kiosk-1", "reply") as kiosk:
        reply = await request(kiosk, "kiosk-1", {"type": "kiosk.services", "id": "after-garbage"})
    assert reply["ok"]


async def test_device_changes_are_on_the_event_stream_and_a_restore_skips_them(
    bus: Bus,
) -> None:
    async with TestClient(TestServer(build_app(bus.server))) as client, \
            client.ws_connect("/api/v1/events?type=device.*") as stream, \
            device(bus, "kiosk-1") as kiosk:
        await kiosk.publish("hall/test/kiosk-1/status", json.dumps(
            {"v": 1, "state": "online", "kind": "kiosk"}), qos=1, retain=True)
        online = json.loads(await stream.receive_str(timeout=5))
    assert (online["type"], online["device_id"], online["change"], online["online"]) == (
        "device.changed", "kiosk-1", "online", True)
    assert online["seq"] > 0
    before = bus.server.runtime.engine.snapshot()
    await bus.server.runtime.restore()
    assert bus.server.runtime.engine.snapshot() == before
