"""A kiosk that prints on a stand-alone printer: nothing is issued while the
printer cannot print, and a job whose printer dies or fails reaches the kiosk
as ``kiosk.print_failed`` within a bounded time, the ticket still valid.
Real Mosquitto and PostgreSQL; the printer's death is a socket cut, so the
broker sends its last will as it would for a pulled plug."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import aiomqtt
import asyncpg
import pytest

from devices.messages import decode_command
from devices.registry import DeviceSpec, PrintJobs, Registry
from devices.topics import DeviceKind
from hall.config import ConfigError, DeviceEntry, parse_hall_config
from queueing import Status
from tests.bus_kit import Bus, hall_on_bus
from tests.mqtt_kit import Mosquitto, connect_raw
from tests.test_device_link import (
    DEVICE_HALL,
    OTHERS,
    SPECS,
    device,
    log_in_w1,
    received,
    request,
)

NOW = datetime.fromisoformat("2026-11-24T09:00:00+08:00")
PRINTED_HALL = replace(DEVICE_HALL, devices=(
    *SPECS,
    DeviceEntry("kiosk-2", DeviceKind.KIOSK, "二楼取号机", area="F1A", printer="printer-2"),
    DeviceEntry("printer-2", DeviceKind.PRINTER, "二楼打印机", area="F1A"),
))


def online_registry() -> Registry:
    registry = Registry([
        DeviceSpec("kiosk-2", DeviceKind.KIOSK, "k", printer="printer-2"),
        DeviceSpec("printer-2", DeviceKind.PRINTER, "p"),
    ])
    registry.came_online("printer-2", DeviceKind.PRINTER, "", "", NOW)
    return registry


# ------------------------------------------------------------ configuration


def hall_with(devices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "hall": {"id": "h", "name": "厅", "working_hours": ["09:00-17:00"]},
        "areas": [{"id": "a", "name": "A区", "floor": 1}],
        "services": [{"id": "biz", "name": "企业设立", "category": "商事", "prefix": "A"}],
        "windows": [{"id": "w1", "name": "1号窗口", "area": "a", "services": ["biz"]}],
        "devices": [{"password_sha256": "0" * 64, "area": "a", **d} for d in devices],
    }


def test_a_kiosk_may_name_its_stand_alone_printer() -> None:
    config = parse_hall_config(hall_with([
        {"id": "k", "kind": "kiosk", "name": "取号机", "printer": "p"},
        {"id": "p", "kind": "printer", "name": "打印机"},
    ]))
    assert config.devices[0].printer == "p"


@pytest.mark.parametrize(("devices", "problem"), [
    ([{"id": "k", "kind": "kiosk", "name": "取号机", "printer": "p"}],
     "devices[0].printer: unknown device 'p'"),
    ([{"id": "k", "kind": "kiosk", "name": "取号机", "printer": "b"},
      {"id": "b", "kind": "hall_board", "name": "屏"}],
     "devices[0].printer: 'b' is a hall_board, not a printer"),
    ([{"id": "b", "kind": "hall_board", "name": "屏", "printer": "p"},
      {"id": "p", "kind": "printer", "name": "打印机"}],
     "devices[0].printer: only for a kiosk, not a hall_board"),
], ids=["unknown", "not-a-printer", "not-a-kiosk"])
def test_a_wrong_printer_reference_is_refused(devices: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_hall_config(hall_with(devices), "hall.toml")
    assert problem in str(error.value)


# ---------------------------------------------------------------- registry


def test_a_kiosk_prints_on_its_configured_printer() -> None:
    registry = online_registry()
    printer = registry.printer_of("kiosk-2")
    assert printer is not None and printer.id == "printer-2"


@pytest.mark.parametrize(("paper", "cover", "online", "problem"), [
    ("ok", "closed", True, None),
    ("near_end", "closed", True, None),
    ("out", "closed", True, "paper_out"),
    ("ok", "open", True, "cover_open"),
    ("ok", "closed", False, "offline"),
])
def test_what_stops_a_stand_alone_printer(
    paper: Any, cover: Any, online: bool, problem: str | None
) -> None:
    registry = online_registry()
    registry.health("printer-2", paper, cover, (), NOW)
    if not online:
        registry.went_offline("printer-2", NOW)
    assert registry.print_problem("kiosk-2") == problem


def test_a_job_ends_when_its_printer_answers_and_only_then() -> None:
    jobs = PrintJobs(timeout=10)
    jobs.sent("job-0000001", "kiosk-2", "printer-2", "T-A001", "A001", now=0)
    assert jobs.answered("job-0000001", "kiosk-1") is None
    ended = jobs.answered("job-0000001", "printer-2")
    assert ended is not None and ended.number == "A001"
    assert jobs.answered("job-0000001", "printer-2") is None


def test_a_job_is_lost_when_its_printer_goes_offline_or_stays_silent() -> None:
    registry = online_registry()
    jobs = PrintJobs(timeout=10)
    jobs.sent("job-0000001", "kiosk-2", "printer-2", "T-A001", "A001", now=0)
    assert jobs.lost(registry, now=9.9) == []
    assert [reason for _, reason in jobs.lost(registry, now=10)] == ["timeout"]
    jobs.sent("job-0000002", "kiosk-2", "printer-2", "T-A002", "A002", now=20)
    registry.went_offline("printer-2", NOW)
    assert [reason for _, reason in jobs.lost(registry, now=21)] == ["printer_offline"]
    assert len(jobs) == 0


# ----------------------------------------------------------------- the bus


@pytest.fixture
async def bus(pool: asyncpg.Pool, mosquitto: Mosquitto) -> AsyncIterator[Bus]:
    async with hall_on_bus(pool, mosquitto, PRINTED_HALL) as started:
        yield started


BIRTH = json.dumps({"v": 1, "state": "online", "kind": "printer"}).encode()
WILL = json.dumps({"v": 1, "state": "offline"}).encode()


async def wait_until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def printer_online(bus: Bus) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The printer on a bare socket with its last will: ``writer.transport.abort()``
    is the printer losing power with its TCP connection reset."""
    reader, writer = await connect_raw(
        bus.broker, "printer-2", will_topic="hall/test/printer-2/status", will_payload=WILL,
        will_retain=True)
    name = b"hall/test/printer-2/status"
    body = struct.pack("!H", len(name)) + name + BIRTH
    writer.write(bytes([0x31, len(body)]) + body)  # PUBLISH, QoS 0, retained
    await writer.drain()
    await wait_until(lambda: getattr(bus.link.registry.status("printer-2"), "online", False))
    return reader, writer


@contextlib.asynccontextmanager
async def printer(bus: Bus) -> AsyncIterator[aiomqtt.Client]:
    """The printer as a client of its own, online and listening (one connection
    per device id: a second one would take the session over and fire the will)."""
    async with device(bus, "printer-2", "reply", "cmd") as client:
        await client.publish("hall/test/printer-2/status", BIRTH, qos=1, retain=True)
        await wait_until(lambda: getattr(bus.link.registry.status("printer-2"), "online", False))
        yield client


def take(request_id: str) -> dict[str, Any]:
    return {"type": "kiosk.take_ticket", "id": request_id, "service": "biz"}


async def test_a_kiosk_whose_printer_is_offline_issues_nothing(bus: Bus) -> None:
    await log_in_w1(bus)
    async with device(bus, "kiosk-2", "reply") as kiosk:
        reply = await request(kiosk, "kiosk-2", take("take-offline1"))
    assert (reply["ok"], reply["error"]["code"]) == (False, "printer_offline")
    assert list(bus.server.runtime.engine.tickets()) == []


async def test_the_print_job_goes_to_the_kiosks_printer(bus: Bus) -> None:
    await log_in_w1(bus)
    async with printer(bus) as paper, device(bus, "kiosk-2", "reply") as kiosk:
        reply = await request(kiosk, "kiosk-2", take("take-printer1"))
        assert reply["ok"], reply
        job = decode_command(json.dumps(await received(paper)))
    assert (job.type, job.id) == ("printer.print", "take-printer1")


async def test_a_printer_that_dies_with_the_job_fails_fast_to_the_kiosk(bus: Bus) -> None:
    await log_in_w1(bus)
    _, writer = await printer_online(bus)
    async with device(bus, "kiosk-2", "reply", "cmd") as kiosk:
        reply = await request(kiosk, "kiosk-2", take("take-dies0001"))
        assert reply["ok"], reply
        started = asyncio.get_running_loop().time()
        writer.transport.abort()
        told = await received(kiosk)
        took = asyncio.get_running_loop().time() - started
    assert (told["type"], told["id"], told["reason"]) == (
        "kiosk.print_failed", "take-dies0001", "printer_offline")
    assert told["number"] in told["message"]
    assert took < 2.0
    ticket = bus.server.runtime.engine.ticket(reply["result"]["ticket"]["id"])
    assert ticket.status is Status.WAITING


async def test_a_printers_failure_is_relayed_to_its_kiosk(bus: Bus) -> None:
    await log_in_w1(bus)
    async with printer(bus) as paper, device(bus, "kiosk-2", "reply", "cmd") as kiosk:
        reply = await request(kiosk, "kiosk-2", take("take-jammed01"))
        failed = await request(paper, "printer-2", {
            "type": "printer.failed", "id": "pf-00000001", "job": "take-jammed01",
            "reason": "paper jam at the cutter"})
        told = await received(kiosk)
    assert failed["ok"]
    assert (told["type"], told["reason"], told["ticket_id"]) == (
        "kiosk.print_failed", "printer_failed", reply["result"]["ticket"]["id"])


async def test_a_silent_printer_times_out_to_the_kiosk(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hall.device_link.PRINT_TIMEOUT", 0.5)
    await log_in_w1(bus)
    async with printer(bus), device(bus, "kiosk-2", "reply", "cmd") as kiosk:
        await request(kiosk, "kiosk-2", take("take-silent01"))
        told = await received(kiosk)
    assert (told["type"], told["reason"]) == ("kiosk.print_failed", "timeout")


async def test_a_printed_job_tells_the_kiosk_nothing(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hall.device_link.PRINT_TIMEOUT", 0.3)
    await log_in_w1(bus)
    async with printer(bus) as paper, device(bus, "kiosk-2", "reply", "cmd") as kiosk:
        await request(kiosk, "kiosk-2", take("take-printed1"))
        done = await request(paper, "printer-2", {
            "type": "printer.done", "id": "pd-00000001", "job": "take-printed1"})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(aiter(kiosk.messages)), 0.8)
    assert done["ok"]
    assert OTHERS.get(id(kiosk), []) == []
    assert len(bus.link._print_jobs()) == 0
