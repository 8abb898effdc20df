"""Real processes for the fault tests: a hall server subprocess on the test's own
Mosquitto and database, that Mosquitto killed and started again on its port,
and device clients (devices/client.py) that keep what the hall told them.

The server subprocess is tests/test_crash_safety.py's ``Hall`` (the demo hall,
open round the clock, on a throwaway database); this kit only points it at the
test's broker, so that no test starts a broker of the server's own under var/.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from devices import messages as m
from devices.client import DeviceClient
from devices.topics import DeviceKind
from hall.broker import listens, log_tail
from tests.mqtt_kit import Mosquitto, require
from tests.test_crash_safety import MANAGER, PASSWORD, Hall, get, post

HALL_ID = "jiangyang"
"""The demo hall's id (config/demo-hall.toml), the first level of its topics."""
BACKEND_TOKEN = "Yyq9ATyCDPgyMs0tyGwwixOAAXKVRb5YJJ3a5mEdqiw"
"""The demo approval backend's published token (config/demo-hall.toml)."""
START_LIMIT = 30.0
"""Seconds a server subprocess has to answer /readyz and connect to the bus."""

PACE = 0.07
"""Seconds between one device's requests. The hall lets a device send 20 messages a
second before it drops them (hall/device_link.py, ``RATE_PER_SECOND``): a person at a
kiosk or a call terminal stays far below that, and so do these devices."""

QUICK_RETRY = 2.0
"""The devices' reply timeout, shorter than a real device's 10 s
(devices.client.REPLY_TIMEOUT) to keep the tests short: a request the broker
lost before the hall was back on it is asked again only when it runs out."""

JSON = dict[str, Any]


# ----------------------------------------------------------------- server


@contextlib.asynccontextmanager
async def hall_process(
    tmp_path: Path, db_url: str, broker: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Hall]:
    """A hall server subprocess on ``broker``, ready and on the bus; killed on the
    way out. A failure inside carries the end of the server's log, which is
    where the hall says why."""
    monkeypatch.setenv("HALL_MQTT_URL", broker.url)
    hall = Hall(tmp_path, db_url)
    hall.start()
    try:
        async with aiohttp.ClientSession() as session:
            await hall.ready(session, timeout=START_LIMIT)
        await wait_for_log(hall, "device bus connected", START_LIMIT)
        yield hall
    except Exception as failure:
        raise AssertionError(f"{failure!r}\n{hall.logs()}") from failure
    finally:
        hall.kill_all()


def server_log(hall: Hall) -> str:
    return hall.server.log.read_text(encoding="utf-8", errors="replace")


async def wait_for_log(hall: Hall, text: str, timeout: float, *, count: int = 1) -> None:
    """Until the server has logged ``text`` ``count`` times."""
    deadline = time.monotonic() + timeout
    while server_log(hall).count(text) < count:
        if hall.server.process.poll() is not None:
            raise AssertionError(f"the server exited with {hall.server.process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not log {text!r} {count}x in {timeout} s")
        await asyncio.sleep(0.05)


async def manager_token(session: aiohttp.ClientSession, base: str) -> str:
    status, body = await post(
        session, f"{base}/api/v1/auth/login", None, {"staff_id": MANAGER, "password": PASSWORD}
    )
    assert status == 200, body
    token: str = body["token"]
    return token


async def devices_listed(session: aiohttp.ClientSession, base: str, token: str) -> dict[str, JSON]:
    """GET /api/v1/devices, by device id."""
    status, body = await get(session, f"{base}/api/v1/devices", token)
    assert status == 200, body
    return {device["id"]: device for device in body["devices"]}


# ----------------------------------------------------------------- broker


def kill_broker(broker: Mosquitto) -> None:
    """SIGKILL: no last wills, and (persistence off) every retained message gone."""
    os.kill(broker.process.pid, signal.SIGKILL)
    broker.process.wait(timeout=5)


def restart_broker(broker: Mosquitto, timeout: float = 10.0) -> None:
    """The same configuration on the same port again; ``broker`` then stands for
    the new process, so the fixture that started it stops this one."""
    binary = require("mosquitto")
    conf = broker.workdir / "mosquitto.conf"
    with broker.log_path.open("ab") as log_file:
        process = subprocess.Popen(
            [binary, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=log_file,
            stderr=log_file,
        )
    broker.process = process
    deadline = time.monotonic() + timeout
    while not listens(process.pid, broker.port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"mosquitto did not listen on port {broker.port} again:\n"
                f"{log_tail(broker.log_path)}"
            )
        time.sleep(0.01)


# ---------------------------------------------------------------- devices


class Device(DeviceClient):
    """A device client that keeps the views it got, with when, and counts the
    requests it had to ask again (same id, no reply in time)."""

    def __init__(self, device_id: str, kind: DeviceKind, broker: Mosquitto,
                 reply_timeout: float = QUICK_RETRY) -> None:
        super().__init__(HALL_ID, device_id, kind, broker.url, firmware="fault-test 1",
                         reply_timeout=reply_timeout)
        self.views: list[tuple[float, m.Display]] = []
        self.retries = 0

    def on_display(self, display: m.Display) -> None:
        self.views.append((time.monotonic(), display))

    def on_sent(self, message: m.Request, retry: bool) -> None:
        self.retries += retry

    def views_since(self, moment: float) -> list[m.Display]:
        return [view for at, view in self.views if at >= moment]


@contextlib.asynccontextmanager
async def running(devices: Iterable[DeviceClient], timeout: float = 10.0
                  ) -> AsyncIterator[None]:
    """Every device connected (birth sent) until the block ends, then stopped."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(device.run(stop)) for device in devices]
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(device.wait_connected() for device in devices))
        yield
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await asyncio.gather(*tasks)


@dataclass
class Told:
    """What the devices were answered: the promises the hall must keep."""

    tickets: dict[str, str] = field(default_factory=dict)
    """Ticket id -> number, for every ``kiosk.take_ticket`` answered with a ticket."""
    requests: dict[str, str] = field(default_factory=dict)
    """``kiosk.take_ticket`` id -> the ticket id its answer gave."""
    calls: list[tuple[str, str]] = field(default_factory=list)
    """(window, ticket id) of every answered ``terminal.call_next``."""
    latencies: list[float] = field(default_factory=list)
    """Seconds from asking to the answer, of every request, retries included."""
    refusals: list[str] = field(default_factory=list)
    """Error codes of every refused request."""

    async def ask(self, device: Device, request: m.Request) -> m.Reply:
        started = time.monotonic()
        reply = await device.request(request)
        self.latencies.append(time.monotonic() - started)
        if not reply.ok and reply.error is not None:
            self.refusals.append(reply.error.code)
        return reply


def new_key() -> str:
    return os.urandom(8).hex()


async def take_tickets(kiosk: Device, service: str, stop: asyncio.Event, told: Told) -> None:
    """A citizen after another at ``kiosk`` until ``stop`` is set."""
    while not stop.is_set():
        request = m.TakeTicket(id=new_key(), service=service)
        reply = await told.ask(kiosk, request)
        if reply.ok and reply.result is not None:
            ticket = reply.result["ticket"]
            told.tickets[ticket["id"]] = ticket["number"]
            told.requests[request.id] = ticket["id"]
        await asyncio.sleep(PACE)


async def log_in(terminal: Device, staff: str, told: Told) -> None:
    """Before the kiosks start: with no window open, tickets are refused."""
    login = await told.ask(terminal, m.Login(id=new_key(), staff_id=staff, password=PASSWORD))
    assert login.ok, login


async def work_terminal(terminal: Device, window: str, stop: asyncio.Event, told: Told) -> None:
    """A clerk at ``window`` calling, starting and finishing until ``stop`` is set."""
    while not stop.is_set():
        called = await told.ask(terminal, m.CallNext(id=new_key()))
        await asyncio.sleep(PACE)
        if not called.ok or called.result is None:
            continue
        told.calls.append((window, called.result["window"]["ticket_id"]))
        for step in (m.StartService(id=new_key()), m.FinishService(id=new_key())):
            done = await told.ask(terminal, step)
            assert done.ok, done
            await asyncio.sleep(PACE)


# ------------------------------------------------------------- event log


async def logged_events(pool: asyncpg.Pool) -> list[tuple[int, str, JSON]]:
    """(seq, type, data) of every event in hall_events, in order."""
    rows = await pool.fetch("SELECT seq, type, data FROM hall_events ORDER BY seq")
    return [(row["seq"], row["type"], json.loads(row["data"])) for row in rows]


async def check_nothing_lost(pool: asyncpg.Pool, told: Told) -> None:
    """No request was refused but a call with nobody waiting; every ticket and
    call a device was answered is in the event log; each ``kiosk.take_ticket``
    made exactly one ticket; and the log has no gap."""
    odd = sorted(set(told.refusals) - {"nothing_waiting"})
    assert not odd, f"refusals no device should have had: {odd}"
    events = await logged_events(pool)
    seqs = [seq for seq, _, _ in events]
    assert seqs == list(range(1, len(seqs) + 1)), "hall_events seqs are not gap-free 1..N"
    issued = {data["ticket_id"]: data["number"] for _, kind, data in events
              if kind == "ticket.issued"}
    lost = sorted(set(told.tickets) - set(issued))
    assert not lost, f"answered tickets missing from the hall: {lost}"
    assert {t: issued[t] for t in told.tickets} == told.tickets, "numbers differ from answers"
    assert len(set(told.requests.values())) == len(told.requests), "two requests, one ticket"
    extra = sorted(set(issued) - set(told.tickets))
    assert not extra, f"tickets no kiosk was answered with (a retry made a second one?): {extra}"
    called = {(data["window_id"], data["ticket_id"]) for _, kind, data in events
              if kind == "ticket.called"}
    uncalled = [call for call in told.calls if call not in called]
    assert not uncalled, f"answered calls missing from the hall: {uncalled}"


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
