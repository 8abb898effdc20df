"""The MQTT broker `make run` starts when no broker URL is configured.

Production runs Mosquitto as a system service (``config/mosquitto/``). For the
demo hall, ``start_broker`` starts a broker of its own on a free port of
127.0.0.1: a Mosquitto subprocess when the ``mosquitto`` binary is installed,
else amqtt's embedded Python broker in this process. amqtt 0.12.1 bends two
MQTT rules, so nothing in the hall may depend on behaviour where it differs
from Mosquitto; the tests run on Mosquitto.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import logging
import os
import pwd
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psutil

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
PORT_ATTEMPTS = 3
"""A free port can be taken between our probe and the broker's bind; try again that often."""

# Debian installs mosquitto in /usr/sbin, which is not on an ordinary user's PATH.
SBIN = "/usr/local/sbin:/usr/sbin:/sbin"

INSTALL_HINT = (
    "install Debian's mosquitto package (apt-get install mosquitto) "
    "or the embedded broker (pip install amqtt==0.12.1)"
)


class BrokerError(RuntimeError):
    """The broker could not be started; the message says why and what to do."""


def find_mosquitto() -> str | None:
    """The path of the ``mosquitto`` binary, also when it is only in an sbin folder."""
    return shutil.which("mosquitto") or shutil.which("mosquitto", path=SBIN)


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def mosquitto_conf(port: int, host: str = HOST, *, anonymous: bool = True, extra: str = "") -> str:
    """A Mosquitto configuration with one listener on ``host:port``.

    Logging goes to stderr, which the caller sends to a file: Mosquitto opens a
    ``log_dest file`` only after parsing its configuration, so errors in it
    would otherwise be lost. Run as root, Mosquitto would switch to the user
    ``mosquitto``, who cannot read files in a private work folder (pytest's
    tmp_path is mode 0700), so it stays the user who started it.
    """
    user = pwd.getpwuid(os.getuid()).pw_name
    lines = [
        "# Written by hall/broker.py: a throwaway broker, not the production configuration.",
        f"listener {port} {host}",
        f"allow_anonymous {'true' if anonymous else 'false'}",
        "persistence false",
        "log_dest stderr",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        f"user {user}",
        # A request and its reply are small messages back to back: with Nagle's
        # algorithm each round trip waited ~40 ms for a delayed ACK.
        "set_tcp_nodelay true",
        # The hall's one connection carries every device's traffic; a burst of
        # births must not overflow Mosquitto's default of 1,000 queued messages.
        "max_queued_messages 100000",
    ]
    return "\n".join(lines) + "\n" + extra


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself listens on TCP ``port``.

    A connection test would also succeed against whoever took the port in the
    moment between ``free_port`` and the broker's bind.
    """
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in connections)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a broker log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


@dataclass(slots=True)
class Broker:
    """A running broker that ``start_broker`` started and ``stop`` ends."""

    url: str
    kind: Literal["mosquitto", "amqtt"]
    host: str
    port: int
    log_path: Path | None = None
    process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    embedded: Any = field(default=None, repr=False)
    """The amqtt ``Broker`` when it runs in this process."""

    async def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """End the broker: SIGTERM and wait, SIGKILL if it does not exit in ``timeout``.

        Safe to call twice. It must run on the event loop that started the broker,
        since that loop owns the subprocess.
        """
        if self.process is not None:
            process, self.process = self.process, None
            await _terminate(process, timeout)
        if self.embedded is not None:
            embedded, self.embedded = self.embedded, None
            try:
                await asyncio.wait_for(embedded.shutdown(), timeout)
            except TimeoutError:
                log.warning("embedded MQTT broker did not shut down in %.0f s", timeout)


async def _terminate(process: asyncio.subprocess.Process, timeout: float) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):  # it exited before we could signal it
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        log.warning("mosquitto pid %s ignored SIGTERM for %.0f s; killing it", process.pid, timeout)
        process.kill()
        await process.wait()


def _die_with_parent() -> None:
    """In the child before exec: a hall server killed with SIGKILL cannot stop its
    broker, which would linger on its port for ever; Linux's parent-death signal stops
    it with the server. Elsewhere the broker outlives a killed server, as before."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


async def start_broker(workdir: Path, *, timeout: float = STARTUP_TIMEOUT) -> Broker:
    """Start the demo hall's broker with its files in ``workdir``.

    Mosquitto when installed, because it is what production runs; else amqtt,
    so that ``make run`` still works on a machine with Python alone.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    binary = find_mosquitto()
    if binary is not None:
        return await _retry_ports(lambda port: _start_mosquitto(binary, workdir, port, timeout))
    try:
        from amqtt.broker import Broker as Amqtt  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise BrokerError(f"no MQTT broker available: {INSTALL_HINT}") from exc
    return await _retry_ports(lambda port: _start_amqtt(Amqtt, port))


class _PortTaken(Exception):
    """Someone bound the port between our probe and the broker's start."""


async def _retry_ports(start: Callable[[int], Awaitable[Broker]]) -> Broker:
    for _ in range(PORT_ATTEMPTS):
        try:
            broker = await start(free_port())
        except _PortTaken:
            continue
        log.info("%s MQTT broker running at %s", broker.kind, broker.url)
        return broker
    raise BrokerError(f"no free port for the MQTT broker after {PORT_ATTEMPTS} tries")


async def _start_mosquitto(binary: str, workdir: Path, port: int, timeout: float) -> Broker:
    conf = workdir / "mosquitto.conf"
    conf.write_text(mosquitto_conf(port))
    log_path = workdir / "mosquitto.log"
    with log_path.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            binary, "-c", str(conf),
            stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            preexec_fn=_die_with_parent,
        )
    deadline = time.monotonic() + timeout
    while not listens(process.pid, port):
        status = process.returncode
        if status is not None or time.monotonic() > deadline:
            await _terminate(process, STOP_TIMEOUT)
            tail = log_tail(log_path)
            if "Address already in use" in tail:
                raise _PortTaken
            why = f"exited with status {status}" if status is not None else (
                f"did not listen within {timeout:.0f} s"
            )
            raise BrokerError(
                f"mosquitto ({binary} -c {conf}) {why} before accepting connections on "
                f"{HOST}:{port}; last lines of {log_path}:\n{tail}"
            )
        await asyncio.sleep(0.02)
    return Broker(f"mqtt://{HOST}:{port}", "mosquitto", HOST, port, log_path, process=process)


async def _start_amqtt(amqtt_broker: Any, port: int) -> Broker:
    """amqtt with one anonymous TCP listener and none of its default plugins
    (packet logging, $SYS topics every 20 s)."""
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    embedded = amqtt_broker(config)
    try:
        await embedded.start()
    except Exception as exc:
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            raise _PortTaken from exc
        raise BrokerError(f"the embedded MQTT broker (amqtt) did not start: {exc}") from exc
    return Broker(f"mqtt://{HOST}:{port}", "amqtt", HOST, port, embedded=embedded)
