"""The broker dies under load (SIGKILL, no persistence: every retained birth and
view is gone with it) and comes back on its port, three times over. A real hall
server subprocess and real device clients must find each other again by
themselves, every time as quickly as the first, and nothing a device was
answered may be lost or done twice.

The devices wait for replies as long as real ones do (10 s): a request the broker
lost before the hall was on it again is asked again when the hall's presence says
it is back (docs/mqtt.md, "Hall presence"), not when that timeout runs out."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from devices import messages as m
from devices.client import REPLY_TIMEOUT
from devices.topics import DeviceKind
from tests.mqtt_kit import Mosquitto, mqtt_client, next_message
from tests.process_kit import (
    JSON,
    Device,
    Told,
    check_nothing_lost,
    devices_listed,
    hall_process,
    kill_broker,
    log_in,
    manager_token,
    new_key,
    restart_broker,
    running,
    server_log,
    take_tickets,
    wait_for_log,
    work_terminal,
)
from tests.test_crash_safety import Hall, get, record_figures

SERVICE = "biz-setup"
WINDOW, STAFF = "w04", "zhangwei"
OUTAGES = 3
"""A broker that fails once often fails again: the hall must not come back
slower each time."""
UP = 1.0
"""Seconds of load before each kill."""
DOWN = 1.0
"""Seconds the broker stays dead each time."""
RECONNECT_LIMIT = 2.0
"""Seconds from the broker's return to the hall on the bus again. Loose: the
hall's first retry comes 0.5 s after it loses the bus."""
AFTER = 3.0
"""Seconds of load after the last restart: long enough for every device's backoff."""
SETTLE = 1.0
"""Seconds for the last views after the load (boards redraw every 0.2 s)."""
SLOWEST_ANSWER = DOWN + 3.0
"""Seconds the slowest request may wait for its answer: the outage, then the devices'
and the hall's reconnections (RECONNECT_LIMIT at most). Far below the reply timeout a
lost request waited for before the hall said on the bus that it was back."""
KINDS = {
    "kiosk-f1": DeviceKind.KIOSK, "kiosk-f2": DeviceKind.KIOSK,
    "call-w04": DeviceKind.CALL_TERMINAL, "screen-w04": DeviceKind.WINDOW_SCREEN,
    "board-f1": DeviceKind.HALL_BOARD, "led-f1b": DeviceKind.LED_STRIP,
    "screen-w01": DeviceKind.WINDOW_SCREEN,
}
"""Devices of the demo hall. screen-w01's window is closed throughout: its view
never changes, so only a resync can bring it back after the broker lost it."""
DISPLAYS = ("screen-w04", "board-f1", "led-f1b", "screen-w01")


async def flap_broker(hall: Hall, broker: Mosquitto) -> tuple[list[float], float, datetime]:
    """Kill and restart the broker ``OUTAGES`` times; returns the seconds the hall
    took to be back on the bus after each restart, and when the last one was
    (monotonic and wall clock)."""
    reconnects: list[float] = []
    restarted, restarted_at = 0.0, datetime.now(UTC)
    for outage in range(1, OUTAGES + 1):
        await asyncio.sleep(UP)
        kill_broker(broker)
        await asyncio.sleep(DOWN)
        restart_broker(broker)
        restarted, restarted_at = time.monotonic(), datetime.now(UTC)
        await wait_for_log(hall, "device bus connected", 15, count=outage + 1)
        reconnects.append(time.monotonic() - restarted)
    return reconnects, restarted, restarted_at


async def check_devices_back(
    session: aiohttp.ClientSession, base: str, token: str, devices: dict[str, Device],
    restarted_at: datetime,
) -> None:
    """Online in the registry and heard from since the last restart: a broker that
    died took no last will with it, so "online" alone would prove nothing."""
    assert all(device.connected for device in devices.values())
    listed = await devices_listed(session, base, token)
    for device_id in devices:
        shown = listed[device_id]
        assert shown["online"], f"{device_id} is not online again: {shown}"
        assert datetime.fromisoformat(shown["last_seen"]) >= restarted_at, (
            f"{device_id} not heard from since the restart: {shown}")
    async with session.get(f"{base}/metrics") as response:
        metrics = await response.text()
    for kind, count in (("kiosk", 2), ("call_terminal", 1), ("window_screen", 2),
                        ("hall_board", 1), ("led_strip", 1)):
        line = f'hall_devices_online{{hall="jiangyang",kind="{kind}"}} {count:.1f}'
        assert line in metrics, f"{line} not in /metrics"


async def check_views_current(
    session: aiohttp.ClientSession, base: str, token: str, devices: dict[str, Device],
    restarted: float,
) -> None:
    """Every display got its view again after the last restart, and what it shows
    now is the hall as it is."""
    for display_id in DISPLAYS:
        assert devices[display_id].views_since(restarted), (
            f"{display_id} got no view after the restart")
    status, window = await get(session, f"{base}/api/v1/windows/{WINDOW}", token)
    assert status == 200, window
    screen = devices["screen-w04"].views[-1][1]
    assert isinstance(screen, m.WindowDisplay)
    assert (screen.positions[0].state, screen.positions[0].number) == (
        window["state"], window["ticket"]), f"screen-w04 shows {screen}, the hall {window}"
    status, services = await get(session, f"{base}/api/v1/services", token)
    assert status == 200, services
    waiting = next(s["waiting"] for s in services if s["id"] == SERVICE)
    for board_id in ("board-f1", "led-f1b"):
        board = devices[board_id].views[-1][1]
        assert isinstance(board, m.BoardDisplay)
        shown = {w.service: w.waiting for w in board.waiting}
        assert shown.get(SERVICE) == waiting, (
            f"{board_id} shows {shown.get(SERVICE)} waiting, the hall {waiting}")


async def check_broker_keeps_the_views(broker: Mosquitto, devices: dict[str, Device]) -> None:
    """The broker lost every retained view with its death; the hall has given it
    each one back, so a screen that starts now resyncs from the broker alone."""
    retained: dict[str, m.Display] = {}
    async with mqtt_client(broker, "a-screen-starting-now") as fresh:
        for display_id in DISPLAYS:
            await fresh.subscribe(f"hall/jiangyang/{display_id}/display", qos=1)
        for _ in DISPLAYS:
            message = await next_message(fresh)
            assert message.retain, f"{message.topic} was not retained"
            retained[str(message.topic).split("/")[2]] = m.decode_display(message.payload)
    for display_id in DISPLAYS:
        assert retained[display_id] == devices[display_id].views[-1][1], (
            f"the broker keeps another view for {display_id} than it last showed")


async def test_a_broker_killed_under_load_loses_nothing_acknowledged_and_everyone_reconnects(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool, mosquitto: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    devices = {device_id: Device(device_id, kind, mosquitto, reply_timeout=REPLY_TIMEOUT)
               for device_id, kind in KINDS.items()}
    kiosk = devices["kiosk-f1"]
    told = Told()
    async with hall_process(tmp_path, db_url, mosquitto, monkeypatch) as hall, \
            running(devices.values()), aiohttp.ClientSession() as session:
        token = await manager_token(session, hall.base)
        await log_in(devices["call-w04"], STAFF, told)
        kept_key = new_key()
        kept = await told.ask(kiosk, m.TakeTicket(id=kept_key, service=SERVICE))
        assert kept.ok and kept.result is not None, kept
        told.tickets[kept.result["ticket"]["id"]] = kept.result["ticket"]["number"]
        told.requests[kept_key] = kept.result["ticket"]["id"]

        stop = asyncio.Event()
        load = asyncio.gather(
            take_tickets(kiosk, SERVICE, stop, told),
            take_tickets(devices["kiosk-f2"], SERVICE, stop, told),
            work_terminal(devices["call-w04"], WINDOW, stop, told),
        )
        reconnects, restarted, restarted_at = await flap_broker(hall, mosquitto)
        answered_before = len(told.latencies)
        again = await told.ask(kiosk, m.TakeTicket(id=kept_key, service=SERVICE))
        await asyncio.sleep(AFTER)
        stop.set()
        await load
        await asyncio.sleep(SETTLE)

        assert again == kept, "the same idempotency key after the restart got another answer"
        assert len(told.latencies) - answered_before > 10, "little was answered after the restart"
        assert server_log(hall).count("device bus connection lost") >= OUTAGES
        assert max(reconnects) < RECONNECT_LIMIT, (
            f"the hall took {', '.join(f'{r:.2f}' for r in reconnects)} s to reconnect")
        assert max(told.latencies) < SLOWEST_ANSWER, (
            f"a request waited {max(told.latencies):.2f} s for its answer")
        await check_devices_back(session, hall.base, token, devices, restarted_at)
        await check_views_current(session, hall.base, token, devices, restarted)
        await check_broker_keeps_the_views(mosquitto, devices)

    await check_nothing_lost(pool, told)
    figures: JSON = {
        "outages": OUTAGES, "down_s": DOWN,
        "hall_back_after_restart_s": [round(r, 3) for r in reconnects],
        "tickets_answered": len(told.tickets), "calls_answered": len(told.calls),
        "asked_again": sum(device.retries for device in devices.values()),
        "slowest_answer_s": round(max(told.latencies), 3),
    }
    record_figures("broker_killed_under_load", figures)


async def test_a_device_cut_off_before_its_answer_asks_again_once_back_not_a_timeout_later(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool, mosquitto: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The call terminal's own connection drops (another client takes its id over)
    while the hall, held still, has its request: the hall's answer then goes out to
    nobody. A terminal that sat out its reply timeout (10 s) would keep the clerk
    and the citizen waiting that long; it asks again as soon as it is back."""
    kiosk = Device("kiosk-f1", DeviceKind.KIOSK, mosquitto, reply_timeout=REPLY_TIMEOUT)
    terminal = Device("call-w04", DeviceKind.CALL_TERMINAL, mosquitto,
                      reply_timeout=REPLY_TIMEOUT)
    told = Told()
    async with hall_process(tmp_path, db_url, mosquitto, monkeypatch) as hall, \
            running((kiosk, terminal)):
        await log_in(terminal, STAFF, told)
        taken = await told.ask(kiosk, m.TakeTicket(id=new_key(), service=SERVICE))
        assert taken.ok and taken.result is not None, taken
        told.tickets[taken.result["ticket"]["id"]] = taken.result["ticket"]["number"]
        told.requests[taken.re] = taken.result["ticket"]["id"]
        os.kill(hall.server.process.pid, signal.SIGSTOP)
        try:
            asking = asyncio.create_task(told.ask(terminal, m.CallNext(id=new_key())))
            await asyncio.sleep(0.2)  # with the broker, and in the stopped hall's socket
            async with mqtt_client(mosquitto, terminal.id):
                pass  # the broker drops the terminal's connection for this one
        finally:
            os.kill(hall.server.process.pid, signal.SIGCONT)
        cut_at = time.monotonic()
        called = await asyncio.wait_for(asking, REPLY_TIMEOUT / 2)
        answered_after = time.monotonic() - cut_at

    assert called.ok and called.result is not None, called
    assert called.result["window"]["ticket_id"] == taken.result["ticket"]["id"]
    assert terminal.retries == 1
    told.calls.append((WINDOW, called.result["window"]["ticket_id"]))
    await check_nothing_lost(pool, told)
    record_figures("device_cut_before_its_answer", {
        "answered_after_cut_s": round(answered_after, 3), "reply_timeout_s": REPLY_TIMEOUT})
