"""One device floods the bus with garbage while a kiosk and a call terminal go
on working: the hall (a real server subprocess) stays up, answers the
flooder with errors until it throttles it, says so in its log, and keeps
answering the others promptly and losing nothing they were told.

The flooder is a process of its own, as a broken device would be, so that its
flood does not slow down the test's devices in this process; run as
``python -m tests.test_fault_flood URL SECONDS`` it floods and prints what it
sent and what it got back as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp
import aiomqtt
import asyncpg
import pytest

from devices import messages as m
from devices.topics import DeviceKind
from hall.device_link import BURST, RATE_PER_SECOND
from tests.mqtt_kit import Mosquitto
from tests.process_kit import (
    HALL_ID,
    JSON,
    Device,
    Told,
    check_nothing_lost,
    hall_process,
    log_in,
    p99,
    running,
    server_log,
    take_tickets,
    work_terminal,
)
from tests.test_crash_safety import ROOT, record_figures

FLOODER = "kiosk-f2"
"""A device of the hall's configuration: its garbage gets past the topic check
and the registry, as far as the hall's decoding."""
FLOOD = 4.0
"""Seconds of flood."""
AROUND = 1.0
"""Seconds the good devices work before the flood and after it."""
LATENCY_LIMIT = 1.0
"""p99 of the good devices' answers, in seconds: loose, this is no benchmark."""
SEED = 20261201


KINDS = ("bad_json", "wrong_schema", "unknown_type", "binary", "huge", "unknown_topic",
         "bad_status", "bad_state")
WEIGHTS = (10, 10, 10, 10, 1, 10, 10, 10)
"""Huge payloads (64 KiB to 1 MiB) now and then: more would only fill the pipe."""


def garbage(rng: random.Random, number: int) -> tuple[str, bytes]:
    """One malformed message: a topic and a payload."""
    own = f"hall/{HALL_ID}/{FLOODER}"
    key = f"flood-{number:08d}"
    kind = rng.choices(KINDS, WEIGHTS)[0]
    if kind == "bad_json":
        return f"{own}/event", b'{"v": 1, "type": "kiosk.take_ticket", "id": "' + key.encode()
    if kind == "wrong_schema":
        return f"{own}/event", json.dumps(
            {"v": 1, "type": "kiosk.take_ticket", "id": key, "service": [1, 2]}).encode()
    if kind == "unknown_type":
        return f"{own}/event", json.dumps({"v": 1, "type": "kiosk.explode", "id": key}).encode()
    if kind == "binary":
        return f"{own}/event", rng.randbytes(rng.randint(1, 512))
    if kind == "huge":
        return f"{own}/event", json.dumps(
            {"v": 1, "type": "kiosk.services", "id": key, "pad": "x" * rng.randint(2**16, 2**20)}
        ).encode()
    if kind == "unknown_topic":
        return rng.choice((f"{own}/nope", f"{own}/event/more", f"hall/other-hall/{FLOODER}/event",
                           f"hall/{HALL_ID}/bad.id/event", "smarthall/raw")), rng.randbytes(64)
    if kind == "bad_status":
        return f"{own}/status", rng.choice((b"\xff\xfe", b'{"v": 1, "state": "exploding"}'))
    return f"{own}/state", rng.choice((b"[]", b'{"v": 1, "health": {"paper": "wet"}}'))


async def flood(url: str, seconds: float) -> JSON:
    """Publish garbage as fast as the connection takes it, and count the replies."""
    host, port = url.removeprefix("mqtt://").split(":")
    rng = random.Random(SEED)
    sent: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    async with aiomqtt.Client(host, int(port), identifier=FLOODER) as client:
        await client.subscribe(f"hall/{HALL_ID}/{FLOODER}/reply", qos=1)

        async def count_replies() -> None:
            async for message in client.messages:
                reply = m.decode_reply(message.payload)
                codes["ok" if reply.error is None else reply.error.code] += 1

        counting = asyncio.create_task(count_replies())
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            topic, payload = garbage(rng, sent.total())
            await client.publish(topic, payload, qos=0)
            sent[topic.rsplit("/", 1)[-1]] += 1
        await asyncio.sleep(1.0)  # the last replies
        counting.cancel()
    return {"sent": dict(sent), "replies": dict(codes), "seconds": seconds}


async def run_flooder(broker: Mosquitto) -> JSON:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.test_fault_flood", broker.url, str(FLOOD), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode == 0, f"the flooder failed:\n{err.decode()}"
    result: JSON = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_a_device_flooding_garbage_is_throttled_and_the_others_are_served(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool, mosquitto: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kiosk = Device("kiosk-f1", DeviceKind.KIOSK, mosquitto)
    terminal = Device("call-w04", DeviceKind.CALL_TERMINAL, mosquitto)
    told = Told()
    async with hall_process(tmp_path, db_url, mosquitto, monkeypatch) as hall, \
            running((kiosk, terminal)), aiohttp.ClientSession() as session:
        await log_in(terminal, "zhangwei", told)
        stop = asyncio.Event()
        load = asyncio.gather(take_tickets(kiosk, "biz-setup", stop, told),
                              work_terminal(terminal, "w04", stop, told))
        await asyncio.sleep(AROUND)
        before = len(told.latencies)
        flooded = await run_flooder(mosquitto)
        during = len(told.latencies) - before
        await asyncio.sleep(AROUND)
        stop.set()
        await load
        assert hall.server.process.poll() is None, "the server died of the flood"
        async with session.get(f"{hall.base}/readyz") as response:
            assert response.status == 200
        log = server_log(hall)

    sent, replies = flooded["sent"], flooded["replies"]
    let_through = BURST + RATE_PER_SECOND * (FLOOD + 2)  # the most the hall takes from one device
    to_event = sent.get("event", 0)
    assert to_event > 5 * let_through, f"a flood of {to_event} is no flood"
    assert replies, "the flooder got no error reply at all"
    assert "ok" not in replies, f"garbage was answered as a success: {replies}"
    assert sum(replies.values()) <= let_through, (
        f"the flooder was answered {sum(replies.values())} times: not throttled")
    assert f"device {FLOODER} floods the bus" in log
    assert f"device {FLOODER} sent a bad request" in log
    flooder_lines = log.count(f"device {FLOODER} sent a bad")
    assert flooder_lines <= let_through, (
        f"{flooder_lines} log lines for {FLOODER}'s garbage: the log is flooded too")
    assert log.count("topic outside the scheme:") <= let_through, "the log is flooded"
    for device in (kiosk, terminal):
        assert f"device {device.id} floods" not in log, f"{device.id} was throttled"

    assert during > 10, f"only {during} answers to the good devices during the flood"
    assert kiosk.retries == terminal.retries == 0, "a good device's request went unanswered"
    assert p99(told.latencies) < LATENCY_LIMIT, f"p99 {p99(told.latencies):.3f} s"
    await check_nothing_lost(pool, told)
    record_figures("device_flooding_garbage", {
        "flood_s": FLOOD, "sent": sent, "error_replies": replies,
        "good_answers": len(told.latencies), "good_answers_during_flood": during,
        "good_p50_s": round(sorted(told.latencies)[len(told.latencies) // 2], 4),
        "good_p99_s": round(p99(told.latencies), 4),
        "good_max_s": round(max(told.latencies), 4),
        "flooder_log_lines": flooder_lines, "server_log_lines": log.count("\n"),
    })


if __name__ == "__main__":
    print(json.dumps(asyncio.run(flood(sys.argv[1], float(sys.argv[2])))))
