"""Real Mosquitto brokers for the tests, and MQTT clients to talk to them.

The ``mosquitto`` fixture (tests/conftest.py) gives each test a Mosquitto of
its own on a free port, started in about 20 ms; tests that need another
configuration (passwords, ACL) call ``start_mosquitto`` themselves. A missing
binary fails the test with what to install: it never skips.

Clients are aiomqtt's::

    async def test_hello(mosquitto: Mosquitto) -> None:
        async with mqtt_client(mosquitto, "server") as server:
            await server.subscribe("hall/#")
            async with mqtt_client(mosquitto, "kiosk-1") as kiosk:
                await kiosk.publish("hall/jy/kiosk-1/event", b"{}", qos=1)
            message = await next_message(server)
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hall.broker import find_mosquitto, free_port, listens, log_tail, mosquitto_conf

HOST = "127.0.0.1"
MISSING = (
    "the MQTT tests need Mosquitto and `{binary}` is not installed: install Debian's "
    "mosquitto package (sudo apt-get install mosquitto; `make test` does it when run as root)"
)


@dataclass(slots=True)
class Mosquitto:
    """A Mosquitto subprocess that belongs to one test."""

    host: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "mosquitto.log"

    def log(self) -> str:
        """The broker's log so far: connections, refused clients, ACL denials."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def require(binary: str) -> str:
    """The path of a Mosquitto binary, or a failed test that says what to install."""
    path = find_mosquitto() if binary == "mosquitto" else shutil.which(binary)
    if path is None:
        pytest.fail(MISSING.format(binary=binary), pytrace=False)
    return path


def start_mosquitto(
    workdir: Path, config: Callable[[int], str] = mosquitto_conf, *, timeout: float = 10.0
) -> Mosquitto:
    """Start Mosquitto with its files in ``workdir``; return once its port accepts connections.

    ``config(port)`` is the configuration text; its first listener must be on
    127.0.0.1:port, a free port. The default is an anonymous broker.
    """
    binary = require("mosquitto")
    workdir.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        broker = _launch(binary, workdir, config, timeout)
        if broker is not None:
            return broker
    pytest.fail("no free port for Mosquitto after 3 tries", pytrace=False)


def _launch(
    binary: str, workdir: Path, config: Callable[[int], str], timeout: float
) -> Mosquitto | None:
    """A started Mosquitto, or None when another process took a port of it first."""
    port = free_port(HOST)
    conf = workdir / "mosquitto.conf"
    conf.write_text(config(port))
    with (workdir / "mosquitto.log").open("wb") as log_file:
        process = subprocess.Popen(
            [binary, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file
        )
    broker = Mosquitto(HOST, port, workdir, process)
    deadline = time.monotonic() + timeout
    while not listens(process.pid, port):
        if process.poll() is not None or time.monotonic() > deadline:
            broker.stop()
            tail = log_tail(broker.log_path)
            if "Address already in use" in tail:
                return None
            pytest.fail(
                f"mosquitto -c {conf} did not start on {HOST}:{port}; "
                f"last lines of {broker.log_path}:\n{tail}",
                pytrace=False,
            )
        time.sleep(0.01)
    return broker


class Endpoint(Protocol):
    """Where a broker listens: a ``Mosquitto`` here or ``hall.broker.Broker``."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


def mqtt_client(broker: Endpoint, client_id: str, **options: Any) -> aiomqtt.Client:
    """An aiomqtt client for ``broker``, to be used as ``async with mqtt_client(...) as c``.

    ``options`` go to ``aiomqtt.Client`` (username, password, will, ...). It must be
    created inside a coroutine: aiomqtt binds the client to the running loop.
    """
    return aiomqtt.Client(broker.host, broker.port, identifier=client_id, **options)


async def next_message(client: aiomqtt.Client, timeout: float = 5.0) -> aiomqtt.Message:
    """The next message for ``client``, failing the test after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            return await anext(aiter(client.messages))
    except TimeoutError:
        pytest.fail(f"no MQTT message within {timeout} s")


def _string(value: str | bytes) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return struct.pack("!H", len(data)) + data


def _remaining_length(length: int) -> bytes:
    encoded = bytearray()
    while True:
        length, digit = divmod(length, 128)
        encoded.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(encoded)


async def connect_raw(
    broker: Endpoint, client_id: str, *, will_topic: str, will_payload: bytes, will_retain: bool
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """An MQTT 3.1.1 session with a last will on a bare socket.

    A library client always says DISCONNECT on the way out; with the socket in
    our hands, ``writer.transport.abort()`` is a device losing power.
    """
    flags = 0x02 | 0x04 | 0x08 | (0x20 if will_retain else 0)  # clean session, will at QoS 1
    body = (
        _string("MQTT") + bytes([4, flags]) + struct.pack("!H", 60)
        + _string(client_id) + _string(will_topic) + _string(will_payload)
    )
    reader, writer = await asyncio.open_connection(broker.host, broker.port)
    writer.write(bytes([0x10]) + _remaining_length(len(body)) + body)
    connack = await asyncio.wait_for(reader.readexactly(4), 5)
    assert connack == b"\x20\x02\x00\x00", f"CONNECT refused: {connack!r}"
    return reader, writer


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cafile: Path
    certfile: Path
    keyfile: Path


def make_tls_files(folder: Path, host: str = HOST) -> TlsFiles:
    """A throwaway CA and a server certificate it signed for ``host``, as PEM files:
    what ``config/mosquitto/README.md`` has an operator make with openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SmartHall test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    files.cafile.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
