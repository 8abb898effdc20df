"""A card reader's ``card.read`` answered with what the hall knows of the holder
today, clear at a window and masked elsewhere; real Mosquitto and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg
import pytest

from devices.topics import DeviceKind
from hall.backend import Progress
from hall.config import DeviceEntry
from hall.pii import Identity
from tests.bus_kit import Bus, hall_on_bus
from tests.mqtt_kit import Mosquitto
from tests.test_device_link import DEVICE_HALL, SPECS, device, log_in_w1, request

ID_NUMBER = "11010519491231002X"
CARD_HALL = replace(DEVICE_HALL, devices=(
    *SPECS,
    DeviceEntry("reader-w1", DeviceKind.CARD_READER, "1号窗口读卡器", area="F1A", window="W1"),
    DeviceEntry("reader-q", DeviceKind.CARD_READER, "自助查询机读卡器", area="F1A"),
))


@pytest.fixture
async def bus(pool: asyncpg.Pool, mosquitto: Mosquitto) -> AsyncIterator[Bus]:
    async with hall_on_bus(pool, mosquitto, CARD_HALL) as started:
        yield started


async def read_card(bus: Bus, reader: str, id_number: str = ID_NUMBER) -> dict[str, Any]:
    async with device(bus, reader, "reply") as client:
        reply = await request(client, reader, {
            "type": "card.read", "id": f"{reader}-read-0001",
            "identity": {"name": "王小明", "id_number": id_number}})
    assert reply["ok"], reply
    result: dict[str, Any] = reply["result"]
    return result


async def a_day_of_the_holder(bus: Bus) -> str:
    """An ID-card ticket at the kiosk, a booking this afternoon, one tomorrow, and
    a case the ticket opened; returns the ticket's id."""
    await log_in_w1(bus)
    async with device(bus, "kiosk-1", "reply") as kiosk:
        for number in range(2):
            await request(kiosk, "kiosk-1", {"type": "kiosk.take_ticket",
                                             "id": f"walk-in-{number:05d}", "service": "biz"})
        taken = await request(kiosk, "kiosk-1", {
            "type": "kiosk.take_ticket", "id": "card-take-001", "service": "biz",
            "identity": {"name": "王小明", "id_number": ID_NUMBER}})
    ticket_id: str = taken["result"]["ticket"]["id"]
    server = bus.server
    booked = await server.citizens.save(Identity("王小明", ID_NUMBER, "13800138000"))
    await server.backend.import_appointments([
        ("YY1124A7K2", "tax", datetime.fromisoformat("2026-11-24T14:00:00+08:00"),
         datetime.fromisoformat("2026-11-24T14:30:00+08:00"), booked),
        ("YY1125B3Q9", "tax", datetime.fromisoformat("2026-11-25T10:00:00+08:00"),
         datetime.fromisoformat("2026-11-25T10:30:00+08:00"), booked),
    ])
    for status, minute in (("received", 5), ("accepted", 9)):
        await server.backend.record_progress(Progress(
            "JY20261124042", ticket_id, status, f"{status} at {minute}",
            datetime.fromisoformat(f"2026-11-24T09:{minute:02d}:00+08:00")))
    return ticket_id


async def test_a_window_reader_gets_the_holders_day_in_full(bus: Bus) -> None:
    ticket_id = await a_day_of_the_holder(bus)
    result = await read_card(bus, "reader-w1")
    assert (result["masked"], result["holder"]) == (
        False, {"name": "王小明", "id_number": ID_NUMBER})
    [ticket] = result["tickets"]
    assert (ticket["id"], ticket["state"], ticket["people_ahead"]) == (ticket_id, "waiting", 2)
    assert [(a["code"], a["status"]) for a in result["appointments"]] == [
        ("YY1124A7K2", "booked")]
    assert [(c["case_id"], c["status"]) for c in result["cases"]] == [
        ("JY20261124042", "accepted")]


async def test_a_query_terminal_gets_the_holder_masked(bus: Bus) -> None:
    await a_day_of_the_holder(bus)
    result = await read_card(bus, "reader-q")
    assert (result["masked"], result["holder"]) == (
        True, {"name": "王*明", "id_number": "110105********002X"})
    assert [a["code"] for a in result["appointments"]] == ["YY******K2"]
    assert len(result["tickets"]) == 1


async def test_a_finished_ticket_is_no_longer_listed_but_its_case_is(bus: Bus) -> None:
    await a_day_of_the_holder(bus)
    async with device(bus, "term-w1", "reply") as terminal:
        for number, step in enumerate(["terminal.call_next", "terminal.start",
                                       "terminal.finish"] * 3):
            await request(terminal, "term-w1", {"type": step, "id": f"step-{number:06d}"})
    result = await read_card(bus, "reader-w1")
    assert result["tickets"] == []
    assert [c["status"] for c in result["cases"]] == ["accepted"]


async def test_a_card_the_hall_does_not_know_gets_an_empty_answer(bus: Bus) -> None:
    await a_day_of_the_holder(bus)
    result = await read_card(bus, "reader-w1", id_number="110105194912310011")
    assert (result["tickets"], result["appointments"], result["cases"]) == ([], [], [])


async def test_a_card_read_answer_is_not_kept_with_its_personal_data(bus: Bus) -> None:
    await a_day_of_the_holder(bus)
    await read_card(bus, "reader-w1")
    kept = await bus.server.pool.fetchval(
        "SELECT count(*) FROM device_replies WHERE device_id = 'reader-w1'")
    assert kept == 0
