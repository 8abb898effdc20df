"""The device bus on real brokers: Mosquitto as the tests and production run it,
the broker `make run` starts, and the production configuration with its ACL."""

from __future__ import annotations

import os
import pwd
import re
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import aiomqtt
import psutil
import pytest

import hall.broker
from hall.broker import BrokerError, start_broker
from tests.mqtt_kit import (
    HOST,
    Mosquitto,
    TlsFiles,
    connect_raw,
    make_tls_files,
    mqtt_client,
    next_message,
    require,
    start_mosquitto,
)

PRODUCTION = Path(__file__).resolve().parents[1] / "config" / "mosquitto"
SERVER = "hall-server"
USERS = {SERVER: "server:s@cret/%1", "kiosk-1": "kiosk-1-secret", "kiosk-2": "kiosk-2-secret"}
"""The server's password has what a URL must percent-encode, as a generated one may."""


async def test_message_goes_from_one_client_to_another(mosquitto: Mosquitto) -> None:
    async with mqtt_client(mosquitto, "server") as server:
        await server.subscribe("hall/+/+/event", qos=1)
        async with mqtt_client(mosquitto, "kiosk-1") as kiosk:
            await kiosk.publish("hall/jy/kiosk-1/event", b'{"button": "A"}', qos=1)
        message = await next_message(server)
    assert message.topic.value == "hall/jy/kiosk-1/event"
    assert message.payload == b'{"button": "A"}'


async def test_retained_message_reaches_a_late_subscriber(mosquitto: Mosquitto) -> None:
    async with mqtt_client(mosquitto, "kiosk-1") as kiosk:
        await kiosk.publish("hall/jy/kiosk-1/state", b"paper-low", qos=1, retain=True)
    async with mqtt_client(mosquitto, "server") as server:
        await server.subscribe("hall/+/+/state", qos=1)
        message = await next_message(server)
    assert (message.topic.value, message.payload, message.retain) == (
        "hall/jy/kiosk-1/state", b"paper-low", True
    )


async def test_last_will_is_published_when_a_device_dies(mosquitto: Mosquitto) -> None:
    async with mqtt_client(mosquitto, "server") as server:
        await server.subscribe("hall/+/+/status", qos=1)
        _, writer = await connect_raw(
            mosquitto, "kiosk-1",
            will_topic="hall/jy/kiosk-1/status", will_payload=b"offline", will_retain=True,
        )
        writer.transport.abort()
        message = await next_message(server)
    assert (message.topic.value, message.payload) == ("hall/jy/kiosk-1/status", b"offline")
    async with mqtt_client(mosquitto, "late") as late:
        await late.subscribe("hall/jy/kiosk-1/status")
        retained = await next_message(late)
    assert (retained.payload, retained.retain) == (b"offline", True)


async def test_start_broker_runs_mosquitto_and_stops_it(tmp_path: Path) -> None:
    require("mosquitto")
    broker = await start_broker(tmp_path)
    try:
        assert broker.kind == "mosquitto"
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
        assert broker.process is not None
        pid = broker.process.pid
        async with mqtt_client(broker, "server") as server:
            await server.subscribe("hall/#")
            await server.publish("hall/jy/kiosk-1/cmd", b"print")
            assert (await next_message(server)).payload == b"print"
    finally:
        await broker.stop()
    assert not psutil.pid_exists(pid)
    with pytest.raises(OSError):
        socket.create_connection((broker.host, broker.port), timeout=1).close()
    await broker.stop()


async def test_start_broker_reports_why_mosquitto_did_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "mosquitto"
    fake.write_text("#!/bin/sh\necho 'Error: Invalid bridge configuration.' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setattr(hall.broker, "find_mosquitto", lambda: str(fake))
    with pytest.raises(BrokerError, match=r"(?s)exited with status 3.*Invalid bridge"):
        await start_broker(tmp_path / "broker")


async def test_start_broker_without_any_broker_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hall.broker, "find_mosquitto", lambda: None)
    monkeypatch.setitem(sys.modules, "amqtt", None)
    monkeypatch.setitem(sys.modules, "amqtt.broker", None)
    hint = r"apt-get install mosquitto.*pip install amqtt==0\.12\.1"
    with pytest.raises(BrokerError, match=hint):
        await start_broker(tmp_path)


def production_broker(workdir: Path) -> tuple[Mosquitto, int, TlsFiles]:
    """Mosquitto on config/mosquitto/mosquitto.conf and its ACL file, with the paths
    and ports moved into ``workdir`` and onto free local ports; the users in ``USERS``.
    Returns the broker (plain listener), the TLS listener's port and the TLS files."""
    passwd = workdir / "smarthall.passwd"
    for number, (user, password) in enumerate(USERS.items()):
        create = ["-c"] if number == 0 else []
        subprocess.run(
            [require("mosquitto_passwd"), *create, "-b", str(passwd), user, password],
            check=True, capture_output=True,
        )
    tls = make_tls_files(workdir / "certs")
    (workdir / "data").mkdir()
    values = {
        "pid_file": str(workdir / "mosquitto.pid"),
        "persistence_location": f"{workdir / 'data'}/",
        "log_dest": "stderr",
        "password_file": str(passwd),
        "acl_file": str(PRODUCTION / "acl"),
        "cafile": str(tls.cafile),
        "certfile": str(tls.certfile),
        "keyfile": str(tls.keyfile),
    }
    tls_port = 0

    def localized(port: int) -> str:
        nonlocal tls_port
        tls_port = hall.broker.free_port()
        listeners = iter([f"{port} {HOST}", f"{tls_port} {HOST}"])
        lines = []
        for line in (PRODUCTION / "mosquitto.conf").read_text().splitlines():
            key = line.split(" ", 1)[0]
            if key.startswith("#"):
                continue
            if key == "listener":
                line = f"listener {next(listeners)}"
            elif key in values:
                line = f"{key} {values[key]}"
            lines.append(line)
        text = "\n".join(lines) + f"\nuser {pwd.getpwuid(os.getuid()).pw_name}\n"
        assert not re.search(r"\s/(etc|var|run)/", text), f"a system path is left in:\n{text}"
        return text

    broker = start_mosquitto(workdir, localized)
    return broker, tls_port, tls


def login(broker: Mosquitto, user: str, **options: object) -> aiomqtt.Client:
    return mqtt_client(broker, user, username=user, password=USERS[user], **options)


async def test_acl_lets_a_device_write_and_read_only_its_own_topics(tmp_path: Path) -> None:
    broker, _, _ = production_broker(tmp_path)
    try:
        async with login(broker, SERVER) as server, login(broker, "kiosk-1") as kiosk:
            await server.subscribe("hall/#", qos=1)
            # One connection's messages arrive in order, so had the forged one got
            # through, the server would have heard it first.
            await kiosk.publish("hall/jy/kiosk-2/event", b"forged", qos=1)
            await kiosk.publish("hall/jy/kiosk-1/event", b"mine", qos=1)
            heard = await next_message(server)
            assert (heard.topic.value, heard.payload) == ("hall/jy/kiosk-1/event", b"mine")

            # Mosquitto 2.0.11 grants this subscription and then withholds every
            # message on it: the ACL is checked per message delivered.
            await kiosk.subscribe("hall/jy/kiosk-2/reply", qos=1)
            await kiosk.subscribe("hall/jy/kiosk-1/reply", qos=1)
            await server.publish("hall/jy/kiosk-2/reply", b"not yours", qos=1)
            await server.publish("hall/jy/kiosk-1/reply", b"yours", qos=1)
            got = await next_message(kiosk)
            assert (got.topic.value, got.payload) == ("hall/jy/kiosk-1/reply", b"yours")
    finally:
        broker.stop()


async def test_production_conf_refuses_strangers_and_serves_devices_over_tls(
    tmp_path: Path,
) -> None:
    broker, tls_port, tls = production_broker(tmp_path)
    try:
        for options in ({}, {"username": "kiosk-1", "password": "wrong"}):
            with pytest.raises(aiomqtt.MqttError):
                async with mqtt_client(broker, "stranger", **options):
                    pass
        context = ssl.create_default_context(cafile=str(tls.cafile))
        async with login(broker, SERVER) as server:
            await server.subscribe("hall/+/+/state", qos=1)
            kiosk = aiomqtt.Client(
                HOST, tls_port, identifier="kiosk-1", username="kiosk-1",
                password=USERS["kiosk-1"], tls_context=context,
            )
            async with kiosk:
                await kiosk.publish("hall/jy/kiosk-1/state", b"ready", qos=1, retain=True)
            heard = await next_message(server)
        assert (heard.topic.value, heard.payload) == ("hall/jy/kiosk-1/state", b"ready")
    finally:
        broker.stop()


async def test_tls_listener_refuses_a_client_that_does_not_trust_the_ca(tmp_path: Path) -> None:
    broker, tls_port, _ = production_broker(tmp_path)
    try:
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                HOST, tls_port, username="kiosk-1", password=USERS["kiosk-1"],
                tls_context=ssl.create_default_context(), timeout=5,
            ):
                pass
    finally:
        broker.stop()



async def test_without_mosquitto_the_hall_runs_the_embedded_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hall.broker, "find_mosquitto", lambda: None)
    broker = await start_broker(tmp_path)
    try:
        assert broker.kind == "amqtt"
        async with mqtt_client(broker, "server") as server:
            await server.subscribe("hall/jy/kiosk-1/event", qos=1)
            async with mqtt_client(broker, "kiosk-1") as kiosk:
                await kiosk.publish("hall/jy/kiosk-1/event", b"take", qos=1)
            assert (await next_message(server)).payload == b"take"
    finally:
        await broker.stop()
    with pytest.raises(OSError):
        socket.create_connection((broker.host, broker.port), timeout=1).close()
