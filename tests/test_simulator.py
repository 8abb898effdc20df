"""The device simulator against a real hall: a hall server and its device link in
this process, a Mosquitto of the test's own, and the simulated devices on it, all
at 600 hall seconds per second."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

import run_hall
from devices.simulator import SimService, Simulation
from devices.topics import DeviceKind
from hall.clock import SimulatedClock
from hall.config import DeviceEntry, load_hall_config
from hall.device_link import DeviceLink
from hall.pii import DataKey
from hall.server import HallServer
from queueing.tickets import Status
from tests.engine_kit import OPENING
from tests.mqtt_kit import Mosquitto
from tests.test_api_hall import HALL, PASSWORD

ROOT = Path(__file__).resolve().parent.parent
SPEED = 600.0

DEVICES = [
    ("kiosk-1", DeviceKind.KIOSK, None, None),
    ("kiosk-2", DeviceKind.KIOSK, None, None),
    ("term-w1", DeviceKind.CALL_TERMINAL, "W1", None),
    ("term-w2", DeviceKind.CALL_TERMINAL, "W2", None),
    ("term-w3", DeviceKind.CALL_TERMINAL, "W3", None),  # no clerk left for it
    ("eval-w1", DeviceKind.EVALUATION_TERMINAL, "W1", None),
    ("screen-w1", DeviceKind.WINDOW_SCREEN, None, "W1"),
    ("board-1", DeviceKind.HALL_BOARD, None, None),
    ("led-1", DeviceKind.LED_STRIP, None, None),
    ("voice-1", DeviceKind.ANNOUNCER, None, None),
]
CONFIG = replace(HALL, devices=tuple(
    DeviceEntry(device_id, kind, device_id, area="F1A", window=window, screen=screen)
    for device_id, kind, window, screen in DEVICES
))
STAFF = [("zhang", PASSWORD), ("wang", PASSWORD)]
SERVICES = [SimService("biz", weight=2, minutes=10), SimService("tax", weight=1, minutes=6)]


@pytest.fixture
async def hall(pool: asyncpg.Pool, mosquitto: Mosquitto) -> AsyncIterator[HallServer]:
    """A hall server whose clock runs at the simulation's speed, listening on the bus."""
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


async def test_simulated_devices_run_the_hall_and_retries_make_no_duplicates(
    hall: HallServer, mosquitto: Mosquitto
) -> None:
    simulation = Simulation(
        "test", mosquitto.url, DEVICES, SERVICES, STAFF, speed=SPEED, seed=3,
        arrivals_per_hour=20, reply_timeout=0.3, lose_replies=0.2,
    )
    assert simulation.driven_windows == {"W1", "W2"}
    stop = asyncio.Event()
    running = asyncio.create_task(simulation.run(stop))
    await asyncio.sleep(5)
    online = hall.devices.status("kiosk-1")
    stop.set()
    await asyncio.wait_for(running, 10)

    stats = simulation.stats
    tickets = list(hall.runtime.engine.tickets())
    numbers = [t.number for t in tickets]
    assert len(set(numbers)) == len(numbers)
    # Kiosks took tickets, and every answered request made exactly one ticket.
    assert len(stats.issued) >= 5
    assert len(set(stats.issued.values())) == len(stats.issued)
    assert set(stats.issued.values()) <= {t.id for t in tickets}
    # Replies were lost and the requests asked again with the same id: still no more
    # tickets than distinct requests (at most one per kiosk was unanswered at the stop).
    take = "kiosk.take_ticket"
    assert stats.lost_replies > 0 and stats.retried[take] > 0
    assert len(tickets) <= stats.sent[take] - stats.retried[take]
    assert len(tickets) <= len(stats.issued) + 2
    # Call terminals called and finished; the idle one's window has no clerk.
    finished = [t for t in tickets if t.status is Status.FINISHED]
    assert stats.called >= 2 and stats.served >= 1 and finished
    assert hall.runtime.engine.window("W3").staff is None
    # Kiosks printed, screens followed, the announcer spoke.
    assert stats.printed >= 1
    assert stats.shown.get("screen-w1") and stats.shown["screen-w1"] <= set(numbers)
    assert stats.shown.get("board-1") and stats.shown.get("led-1")
    assert stats.announced and stats.announced[0].startswith("请")
    # Each device was online with its birth, and said it was offline when stopped.
    assert online is not None and online.online and online.firmware.startswith("smarthall")
    for _ in range(50):
        if not any(s.online for s in hall.devices.all()):
            break
        await asyncio.sleep(0.05)
    assert [s.id for s in hall.devices.all() if s.online] == []


def test_the_demo_config_gives_terminals_only_to_clerks_who_can_log_in() -> None:
    config = load_hall_config(ROOT / "config" / "demo-hall.toml")
    simulation = run_hall.build_simulation(config, "mqtt://127.0.0.1:1883", 10)
    assert simulation.driven_windows == {"w01", "w02", "w03"}
    assert len(simulation.devices) == len(config.devices)
    weights = {s.id: s.weight for s in simulation.services}
    assert set(weights) == set(config.layout.services) and min(weights.values()) > 0


def test_simulate_has_a_help() -> None:
    done = subprocess.run(
        [sys.executable, "run_hall.py", "simulate", "--help"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
    )
    assert done.returncode == 0, done.stderr
    for option in ("--mqtt-url", "--speed", "--config", "--staff-password"):
        assert option in done.stdout


def test_the_simulator_runs_without_the_hall_server() -> None:
    """The edge agent ships ``devices`` alone: the simulator must not import ``hall``."""
    probe = (
        "import sys, devices.simulator; "
        "hall = sorted(m for m in sys.modules if m == 'hall' or m.startswith('hall.')); "
        "sys.exit(f'imported {hall}' if hall else 0)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
