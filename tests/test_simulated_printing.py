"""The simulator's kiosks take priority tickets with their group's password and
print on a stand-alone printer, against a real hall (Mosquitto, PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest

from devices import simulator
from devices.simulator import SimService, Simulation
from devices.topics import DeviceKind
from hall.clock import SimulatedClock
from hall.config import DeviceEntry
from hall.device_link import DeviceLink
from hall.pii import DataKey
from hall.server import HallServer
from queueing import Source
from tests.engine_kit import OPENING
from tests.mqtt_kit import Mosquitto
from tests.test_api_hall import PASSWORD
from tests.test_priority import ELDERLY, PRIORITY_HALL

SPEED = 600.0
DEVICES = [
    ("kiosk-1", DeviceKind.KIOSK, None, None),
    ("printer-1", DeviceKind.PRINTER, None, None),
    ("term-w1", DeviceKind.CALL_TERMINAL, "W1", None),
]
CONFIG = replace(PRIORITY_HALL, devices=(
    DeviceEntry("kiosk-1", DeviceKind.KIOSK, "取号机", area="F1A", printer="printer-1"),
    DeviceEntry("printer-1", DeviceKind.PRINTER, "打印机", area="F1A"),
    DeviceEntry("term-w1", DeviceKind.CALL_TERMINAL, "呼叫器", area="F1A", window="W1"),
))


@pytest.fixture
async def hall(pool: asyncpg.Pool, mosquitto: Mosquitto) -> AsyncIterator[HallServer]:
    server = HallServer.assemble(CONFIG, pool, SimulatedClock(OPENING, SPEED), DataKey.generate())
    await server.start()
    link = DeviceLink(server, mosquitto.url)
    task = asyncio.create_task(link.run())
    await asyncio.wait_for(link.connected.wait(), 5)
    yield server
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await link.stop()
    await server.stop()


async def test_simulated_kiosks_take_priority_tickets_and_print_on_their_printer(
    hall: HallServer, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulator, "PRIORITY", 0.5)
    simulation = Simulation(
        "test", mosquitto.url, DEVICES, [SimService("biz", minutes=10)], [("zhang", PASSWORD)],
        speed=SPEED, seed=5, arrivals_per_hour=30, priority=[("elderly", ELDERLY)],
    )
    stop = asyncio.Event()
    running = asyncio.create_task(simulation.run(stop))
    await asyncio.sleep(4)
    stop.set()
    await asyncio.wait_for(running, 10)
    tickets = list(hall.runtime.engine.tickets())
    priority = [t for t in tickets if t.source is Source.PRIORITY]
    assert simulation.stats.priority >= 1 and len(priority) == simulation.stats.priority
    assert {t.priority_group for t in priority} == {"elderly"}
    printers = {d.id: d for d in simulation.devices if isinstance(d, simulator._Printer)}
    assert printers["printer-1"].printed >= 1 and printers["kiosk-1"].printed == 0
    assert simulation.stats.print_failed == 0
