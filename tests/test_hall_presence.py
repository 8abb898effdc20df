"""The hall server's presence on the bus (docs/mqtt.md, "Hall presence"): retained
online once it listens, offline by its last will or its clean stop, and devices that
ask again at once when it comes back, instead of a reply timeout later."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiomqtt
import asyncpg
import pytest

from devices import messages as m
from devices.client import REPLY_TIMEOUT, DeviceClient
from devices.topics import DeviceKind, server_topic, subscriptions
from hall.device_link import DeviceLink
from hall.server import HallServer
from tests.hall_kit import serving
from tests.mqtt_kit import HOST, Mosquitto, mqtt_client, next_message
from tests.process_kit import (
    Device,
    Told,
    hall_process,
    log_in,
    new_key,
    running,
    wait_for_log,
)
from tests.test_api_hall import PASSWORD
from tests.test_broker import SERVER, USERS, login, production_broker
from tests.test_device_link import DEVICE_HALL
from tests.test_device_protocol import doc_json_blocks

HALL_ID = "test"
PRESENCE = server_topic(HALL_ID)
BACK_WITHIN = 1.0
"""Seconds from the hall being back on the bus to the answer of a request sent while it
was away: a retry on its presence, where the reply timeout would take 10 s."""


# ------------------------------------------------------------------ the protocol


def test_the_presence_topic_is_no_devices_and_no_server_subscription_matches_it() -> None:
    assert PRESENCE == "hall/test/$server"
    assert not any(aiomqtt.Topic(PRESENCE).matches(name) for name in subscriptions(HALL_ID))
    with pytest.raises(ValueError):
        server_topic("a/b")


@pytest.mark.parametrize("name", sorted(m.PRESENCE_EXAMPLES))
def test_the_docs_show_each_presence_exactly_as_the_hall_sends_it(name: str) -> None:
    example = m.PRESENCE_EXAMPLES[name]
    assert example in doc_json_blocks()
    assert json.loads(m.encode(m.decode_presence(json.dumps(example)))) == example


def test_a_presence_with_a_field_this_version_does_not_know_still_decodes() -> None:
    newer = {**m.PRESENCE_EXAMPLES["presence.online"], "leader": "proc-a"}
    assert isinstance(m.decode_presence(json.dumps(newer)), m.HallOnline)


# ------------------------------------------------------------------ in-process hall


class Link:
    """The hall's device link, stopped cleanly and started again as the test says:
    a hall that was away from the bus."""

    def __init__(self, server: HallServer, url: str) -> None:
        self.link = DeviceLink(server, url)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> float:
        """Returns the monotonic time the hall was on the bus again."""
        self.link.connected.clear()
        self.task = asyncio.create_task(self.link.run())
        await asyncio.wait_for(self.link.connected.wait(), 5)
        return time.monotonic()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None


@pytest.fixture
async def server(pool: asyncpg.Pool) -> AsyncIterator[HallServer]:
    started = await serving(pool, config=DEVICE_HALL)
    yield started
    await started.stop()


@pytest.fixture
async def link(server: HallServer, mosquitto: Mosquitto) -> AsyncIterator[Link]:
    running = Link(server, mosquitto.url)
    await running.start()
    yield running
    await running.stop()
    await running.link.stop()


class Kiosk(DeviceClient):
    """A kiosk with the production reply timeout, counting what it sends and hearing
    the hall come and go; ``lose_next`` drops the next reply as a network would."""

    def __init__(self, broker: Mosquitto, device_id: str = "kiosk-1",
                 kind: DeviceKind = DeviceKind.KIOSK) -> None:
        super().__init__(HALL_ID, device_id, kind, broker.url, reply_timeout=REPLY_TIMEOUT)
        self.sent = 0
        self.hall_changes: list[tuple[float, bool]] = []
        self.lose_next = False
        self.lost: list[m.Reply] = []

    def on_sent(self, message: m.Request, retry: bool) -> None:
        self.sent += 1

    def on_hall(self, online: bool) -> None:
        self.hall_changes.append((time.monotonic(), online))

    def lose_reply(self, reply: m.Reply) -> bool:
        if self.lose_next:
            self.lose_next = False
            self.lost.append(reply)
            return True
        return False

    async def ask_and_lose_the_reply(self, request: m.Request) -> asyncio.Task[m.Reply]:
        """The request, still waiting once its first reply was dropped on the way."""
        self.lose_next = True
        asking = asyncio.create_task(self.request(request))
        async with asyncio.timeout(5):
            while not self.lost:
                await asyncio.sleep(0.01)
        return asking

    async def hall_is(self, online: bool, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self.hall_online != online:
                await asyncio.sleep(0.01)


async def open_window(broker: Mosquitto) -> None:
    """A clerk at W1, so that the kiosk's tickets are issued."""
    terminal = Kiosk(broker, "term-w1", DeviceKind.CALL_TERMINAL)
    async with running([terminal], timeout=5):
        login = await terminal.request(
            m.Login(id=new_key(), staff_id="zhang", password=PASSWORD))
    assert login.ok, login


async def retained_presence(broker: Mosquitto, hall_id: str = HALL_ID) -> m.Presence:
    async with mqtt_client(broker, "looks-at-the-hall") as looker:
        await looker.subscribe(server_topic(hall_id), qos=1)
        message = await next_message(looker)
    assert message.retain
    return m.decode_presence(message.payload)


async def tickets_made(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM hall_events WHERE type = 'ticket.issued'")
    return count


async def test_the_hall_says_it_is_online_once_it_listens_and_offline_when_it_stops_cleanly(
    link: Link, mosquitto: Mosquitto
) -> None:
    online = await retained_presence(mosquitto)
    assert isinstance(online, m.HallOnline)
    assert abs(online.since.timestamp() - time.time()) < 60
    await link.stop()
    assert isinstance(await retained_presence(mosquitto), m.HallOffline)
    await link.start()
    again = await retained_presence(mosquitto)
    assert isinstance(again, m.HallOnline) and again.since > online.since


async def test_a_request_sent_while_the_hall_was_away_is_answered_as_soon_as_it_is_back(
    link: Link, mosquitto: Mosquitto, pool: asyncpg.Pool
) -> None:
    await open_window(mosquitto)
    kiosk = Kiosk(mosquitto)
    async with running([kiosk], timeout=5):
        await kiosk.hall_is(True)
        await link.stop()
        await kiosk.hall_is(False)
        asking = asyncio.create_task(kiosk.request(m.TakeTicket(id=new_key(), service="biz")))
        await asyncio.sleep(0.5)  # out on the bus, to nobody
        assert not asking.done() and kiosk.sent == 1
        back = await link.start()
        reply = await asyncio.wait_for(asking, REPLY_TIMEOUT)
        answered_after = time.monotonic() - back
        assert [online for _, online in kiosk.hall_changes] == [True, False, True]
    print(f"\nhall presence: answered {answered_after:.3f} s after the link was back")
    assert reply.ok and reply.result is not None, reply
    assert answered_after < BACK_WITHIN, f"answered {answered_after:.2f} s after the hall was back"
    assert kiosk.sent == 2, "asked again once, on the hall's return"
    assert await tickets_made(pool) == 1


async def test_a_request_the_hall_had_answered_is_asked_again_on_its_return_and_makes_one_ticket(
    link: Link, mosquitto: Mosquitto, pool: asyncpg.Pool
) -> None:
    """The hall took the ticket, but its reply was lost and then the hall went away and
    came back: the kiosk asks again at once and gets the kept reply, not a second ticket."""
    await open_window(mosquitto)
    kiosk = Kiosk(mosquitto)
    async with running([kiosk], timeout=5):
        await kiosk.hall_is(True)
        asking = await kiosk.ask_and_lose_the_reply(m.TakeTicket(id=new_key(), service="biz"))
        await link.stop()
        back = await link.start()
        reply = await asyncio.wait_for(asking, REPLY_TIMEOUT)
        answered_after = time.monotonic() - back
    assert reply == kiosk.lost[0], "the retry got another answer than the lost one"
    assert reply.ok and reply.result is not None
    assert answered_after < BACK_WITHIN
    assert kiosk.sent == 2
    assert await tickets_made(pool) == 1
    assert len(list(link.link.server.runtime.engine.tickets())) == 1


async def test_the_same_presence_again_is_no_return_and_sends_nothing_twice(
    link: Link, mosquitto: Mosquitto
) -> None:
    """An online the device has seen already is the connection it already knew: only a
    new ``since`` may have missed a request."""
    kiosk = Kiosk(mosquitto)
    async with running([kiosk], timeout=5):
        await kiosk.hall_is(True)
        asking = await kiosk.ask_and_lose_the_reply(m.KioskServices(id=new_key()))
        current = await retained_presence(mosquitto)
        async with mqtt_client(mosquitto, "repeats-the-hall") as repeater:
            await repeater.publish(PRESENCE, m.encode(current), qos=1)
        await asyncio.sleep(0.5)
        assert kiosk.sent == 1 and not asking.done()
        asking.cancel()


async def test_the_retained_presence_a_reconnection_brings_adds_no_third_ask(
    link: Link, mosquitto: Mosquitto
) -> None:
    """Cut off, a device asks its pending request again once reconnected; the retained
    online it then finds, even a new one, was there before it subscribed, so whatever it
    sent since was heard, and it does not ask a third time."""
    kiosk = Kiosk(mosquitto)
    async with running([kiosk], timeout=5):
        await kiosk.hall_is(True)
        asking = await kiosk.ask_and_lose_the_reply(m.KioskServices(id=new_key()))
        async with mqtt_client(mosquitto, kiosk.id):  # the broker drops the kiosk for this
            await kiosk.hall_is(False)
            newer = m.HallOnline(since=datetime.now(UTC))
            async with mqtt_client(mosquitto, "another-hall-connection") as other:
                await other.publish(PRESENCE, m.encode(newer), qos=1, retain=True)
        reply = await asyncio.wait_for(asking, 5)
        await kiosk.hall_is(True)
    assert reply.ok
    assert kiosk.sent == 2, "asked again on reconnecting, and no more"


JUNK: list[bytes] = [
    b"not json", b"\xff\xfe\x00", b"[1, 2]", b"{}", b'{"v": 1, "state": "asleep"}',
    b'{"v": 2, "state": "online", "since": "2026-03-16T08:00:00+08:00"}',
    b'{"v": 1, "state": "online"}', b'{"v": 1, "state": "online", "since": "yesterday"}',
    b'{"v": 1, "state": "online", "since": "2026-03-16T08:00:00"}',
    b'{"v": 1, "state": "online", "since": 1773619200}', b"{" * 20_000,
]


async def test_junk_on_the_presence_topic_is_logged_and_changes_nothing_for_a_device(
    link: Link, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="devices.client")
    kiosk = Kiosk(mosquitto)
    async with running([kiosk], timeout=5):
        await kiosk.hall_is(True)
        async with mqtt_client(mosquitto, "a-prankster") as prankster:
            for junk in JUNK:
                await prankster.publish(PRESENCE, junk, qos=1)
            await prankster.publish(PRESENCE, JUNK[0], qos=1, retain=True)
        async with asyncio.timeout(5):
            while len(bad_presence_lines(caplog)) < len(JUNK) + 1:
                await asyncio.sleep(0.01)
        assert kiosk.hall_online and kiosk.connected
        assert [online for _, online in kiosk.hall_changes] == [True]
        reply = await asyncio.wait_for(kiosk.request(m.KioskServices(id=new_key())), 5)
        assert reply.ok and kiosk.sent == 1
    late = Kiosk(mosquitto, "kiosk-2")
    async with running([late], timeout=5):
        async with asyncio.timeout(5):
            while len(bad_presence_lines(caplog)) < len(JUNK) + 2:
                await asyncio.sleep(0.01)
        assert late.connected and not late.hall_online
    lines = bad_presence_lines(caplog)
    assert all(len(line) < 2000 for line in lines), "a log line carries the junk in full"


def bad_presence_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if "ignored a bad hall presence" in record.getMessage()]


# ------------------------------------------------------------------ the broker's ACL


async def test_the_acl_lets_devices_read_the_presence_and_only_the_server_write_it(
    tmp_path: Path,
) -> None:
    broker, _, _ = production_broker(tmp_path)
    topic = server_topic("jy")
    online = json.dumps(m.PRESENCE_EXAMPLES["presence.online"]).encode()
    try:
        async with login(broker, SERVER) as server:
            await server.publish(topic, online, qos=1, retain=True)
        async with login(broker, "kiosk-1") as kiosk:
            await kiosk.subscribe(topic, qos=1)
            heard = await next_message(kiosk)
            assert (heard.payload, heard.retain) == (online, True)
            await kiosk.publish(topic, m.encode(m.HallOffline()), qos=1, retain=True)
        async with login(broker, "kiosk-2") as other:
            await other.subscribe(topic, qos=1)
            assert (await next_message(other)).payload == online, "a device wrote $server"
    finally:
        broker.stop()


# ------------------------------------------------------------------ over TLS


def server_tls_url(tls_port: int) -> str:
    """HALL_MQTT_URL for the production broker's TLS listener, password percent-encoded."""
    return f"mqtts://{SERVER}:{quote(USERS[SERVER], safe='')}@{HOST}:{tls_port}"


async def test_the_hall_answers_over_tls_logged_in_with_a_percent_encoded_password(
    tmp_path: Path, server: HallServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker, tls_port, tls = production_broker(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.cafile))
    assert quote(USERS[SERVER], safe="") != USERS[SERVER]
    hall = Link(server, server_tls_url(tls_port))
    kiosk = DeviceClient(HALL_ID, "kiosk-1", DeviceKind.KIOSK, f"mqtts://{HOST}:{tls_port}",
                         password=USERS["kiosk-1"])
    try:
        await hall.start()
        async with running([kiosk], timeout=5):
            async with asyncio.timeout(5):
                while not kiosk.hall_online:
                    await asyncio.sleep(0.01)
                asked = m.TakeTicket(id=new_key(), service="biz")
                reply = await kiosk.request(asked)
        assert reply.re == asked.id
    finally:
        await hall.stop()
        await hall.link.stop()
        broker.stop()


async def test_a_hall_that_does_not_trust_the_brokers_ca_never_connects(
    tmp_path: Path, server: HallServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, tls_port, _ = production_broker(tmp_path)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    caplog.set_level(logging.WARNING, "hall.device_link")
    hall = Link(server, server_tls_url(tls_port))
    hall.task = asyncio.create_task(hall.link.run())
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(hall.link.connected.wait(), 2)
        assert any("certificate verify failed" in record.getMessage()
                   for record in caplog.records)
    finally:
        await hall.stop()
        await hall.link.stop()
        broker.stop()


# ------------------------------------------------------------------ a real server process


async def test_a_killed_servers_will_says_offline_and_its_successor_answers_at_once(
    tmp_path: Path, db_url: str, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_hall.py killed with SIGKILL: the broker publishes its will. A kiosk that asks
    while no server runs is answered as soon as the next one is on the bus."""
    kiosk = Device("kiosk-f1", DeviceKind.KIOSK, mosquitto, reply_timeout=REPLY_TIMEOUT)
    terminal = Device("call-w04", DeviceKind.CALL_TERMINAL, mosquitto,
                      reply_timeout=REPLY_TIMEOUT)
    figures: dict[str, Any] = {}
    async with hall_process(tmp_path, db_url, mosquitto, monkeypatch) as hall, \
            running([kiosk, terminal], timeout=5):
        assert isinstance(await retained_presence(mosquitto, "jiangyang"), m.HallOnline)
        await log_in(terminal, "zhangwei", Told())
        os.kill(hall.server.process.pid, signal.SIGKILL)
        hall.server.process.wait(timeout=10)
        assert isinstance(await retained_presence(mosquitto, "jiangyang"), m.HallOffline)
        assert not kiosk.hall_online
        asking = asyncio.create_task(kiosk.request(m.TakeTicket(id=new_key(),
                                                                service="biz-setup")))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        hall.start()
        await wait_for_log(hall, "device bus connected", 30)
        back = time.monotonic()
        reply = await asyncio.wait_for(asking, REPLY_TIMEOUT)
        answered = time.monotonic()
        figures = {"restart_to_bus_s": round(back - started, 2),
                   "answered_after_bus_s": round(answered - back, 3)}
    print(f"\nhall presence after kill -9: {figures}")
    assert reply.ok, reply
    assert answered - back < BACK_WITHIN, figures
    assert kiosk.retries == 1

