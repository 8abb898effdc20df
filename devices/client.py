"""One device's connection to the hall, as docs/mqtt.md describes it.

The simulated devices and the edge agent's real ones are both ``DeviceClient``\\s: the
same connection, last will, birth, retained state, requests matched to replies by id
(asked again with the same id when a reply is lost), and reconnection with backoff.
A subclass says what the device does on its own (``behave``) and how it reacts to
commands and views from the hall (``on_command``, ``on_display``).

Each device also reads the hall server's presence (``hall/<hall_id>/$server``): when the
server comes (back) online, every request still waiting for its reply is asked again at
once, since it may have gone out while nobody listened (the broker had just restarted,
or in a city another process was taking the hall over). The reply timeout stays the
fallback for the rest.

This module must never import ``hall``: the edge agent runs without the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import Coroutine
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

from devices import messages as m
from devices.broker_url import BrokerAddress
from devices.topics import (
    QOS,
    Channel,
    DeviceKind,
    device_subscriptions,
    parse_topic,
    server_topic,
    topic,
)

log = logging.getLogger(__name__)

MQTT_LOG = log.getChild("mqtt")
"""The MQTT library's own log. Its socket errors only repeat the warning each device logs
when its connection drops (two dozen times over when Ctrl-C stops the demo's broker with
the demo); set this logger to DEBUG to see them."""
MQTT_LOG.setLevel(logging.CRITICAL)

REPLY_TIMEOUT = 10.0
"""Real seconds to wait for a reply before asking again with the same id (docs/mqtt.md)."""

KEEPALIVE = 30
"""Seconds, as docs/mqtt.md asks: the broker declares a silent device offline within 45 s."""


def redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    return parts._replace(netloc=f"{host}:{parts.port}" if parts.port else host).geturl()


class DeviceClient:
    """One device on the bus: its own MQTT connection (reconnected with a growing,
    jittered delay), its retained birth and state, its requests and what the hall sends.

    ``password`` is for a broker that checks devices (username = device id); a password
    in ``broker_url`` is used when ``password`` is not given. A ``broker_url`` that
    cannot be used raises ValueError here, not at each reconnection.
    """

    def __init__(
        self,
        hall_id: str,
        device_id: str,
        kind: DeviceKind,
        broker_url: str,
        *,
        password: str | None = None,
        firmware: str = "",
        config_version: str = "",
        reply_timeout: float = REPLY_TIMEOUT,
        rng: random.Random | None = None,
    ) -> None:
        self.hall_id = hall_id
        self.id = device_id
        self.kind = kind
        self.broker_url = broker_url
        self._broker = BrokerAddress.parse(broker_url)
        self.password = password if password is not None else self._broker.password
        self.firmware = firmware
        self.config_version = config_version
        self.reply_timeout = reply_timeout
        self.rng = rng or random.Random(device_id)
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        """Set when the current connection ends: what it carried may be lost with it."""
        self._pending: dict[str, asyncio.Future[m.Reply]] = {}
        self._server_topic = server_topic(hall_id)
        self._hall: m.Presence | None = None
        """What the hall server's presence says on this connection; None before it is heard."""
        self._hall_since: datetime | None = None
        """``since`` of the last hall server connection seen online, across our own
        reconnections: only a new one can have missed a request."""
        self._hall_back = asyncio.Event()
        """Set, then replaced, each time a new hall server connection comes online."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._group: asyncio.TaskGroup | None = None
        self._stopping = False

    def topic(self, channel: Channel) -> str:
        return topic(self.hall_id, self.id, channel)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    @property
    def hall_online(self) -> bool:
        """Whether the hall server is there to answer: this device is connected and the
        server's presence says online. While it is not (the broker restarting, a city
        hall being taken over), a kiosk can say "system busy" instead of hanging; its
        requests still go out and are asked again the moment the server is back."""
        return self.connected and isinstance(self._hall, m.HallOnline)

    def on_hall(self, online: bool) -> None:
        """Called when ``hall_online`` changes."""

    # ---------------------------------------------------------------- life

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected and behave until ``stop`` is set; say offline on the way out,
        since a clean disconnect cancels the last will."""
        self._stopping = False
        async with asyncio.TaskGroup() as group:
            self._group = group
            self._tasks.add(group.create_task(self.behave()))
            connection = group.create_task(self._stay_connected())
            await stop.wait()
            self._stopping = True
            await asyncio.gather(*(stop_task(task) for task in [*self._tasks, connection]))

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Handle a command on the side: the message loop must go on reading, or the
        reply that the handler waits for would never be read. Once the device is
        stopping, new work is dropped: its task would be in no list of tasks to stop,
        and the device would wait for it (a print job's "done" asking again for ever
        on a connection that is going away)."""
        assert self._group is not None
        if self._stopping:
            work.close()
            return
        task = self._group.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def behave(self) -> None:
        """What the device does on its own; most devices only react."""

    def state(self) -> m.DeviceState:
        """Health and telemetry as published on ``state``: healthy by default."""
        return m.DeviceState()

    async def publish_state(self) -> None:
        """After a change; a device offline publishes it when it is back."""
        client = self._client
        if client is None:
            return
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(self.topic(Channel.STATE), m.encode(self.state()), qos=QOS,
                                 retain=True)

    async def _stay_connected(self) -> None:
        """Say so once per outage, not at every attempt, and spread reconnections so a
        broker coming back is not hit by every device at once."""
        delay = 0.5
        quiet = False
        while True:
            client = self._connect()
            try:
                async with client:
                    delay, quiet = 0.5, False
                    _no_delay(client)
                    await self._session(client)
            except aiomqtt.MqttError as exc:
                still_cancelled(exc)
                log.log(logging.DEBUG if quiet else logging.WARNING,
                        "%s: no connection to the broker (%s); retrying in %.1f s", self.id,
                        exc, delay)
                quiet = True
                await asyncio.sleep(delay * self.rng.uniform(0.8, 1.2))
                delay = min(delay * 2, 30.0)
            finally:
                forget_disconnection(client)

    def _connect(self) -> aiomqtt.Client:
        broker = self._broker
        return aiomqtt.Client(
            broker.host,
            broker.port,
            identifier=self.id,
            logger=MQTT_LOG,
            username=self.id if self.password else None,
            password=self.password,
            clean_session=True,
            keepalive=KEEPALIVE,
            will=aiomqtt.Will(self.topic(Channel.STATUS), m.encode(m.Offline()), qos=QOS,
                              retain=True),
            tls_context=broker.tls_context(),
        )

    async def _session(self, client: aiomqtt.Client) -> None:
        """docs/mqtt.md, "Connecting": subscribe, then birth, then state, then listen."""
        try:
            for name in [*device_subscriptions(self.hall_id, self.id), self._server_topic]:
                await client.subscribe(name, qos=QOS)
            birth = m.Birth(kind=self.kind, firmware=self.firmware,
                            config_version=self.config_version)
            await client.publish(self.topic(Channel.STATUS), m.encode(birth), qos=QOS,
                                 retain=True)
            await client.publish(self.topic(Channel.STATE), m.encode(self.state()), qos=QOS,
                                 retain=True)
            self._client = client
            self._lost = asyncio.Event()
            self._connected.set()
            log.debug("%s: online", self.id)
            async for message in client.messages:
                self._receive(message)
        except asyncio.CancelledError:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(2):
                    await client.publish(self.topic(Channel.STATUS), m.encode(m.Offline()),
                                         qos=QOS, retain=True)
            raise
        finally:
            self._hall_is(None)  # while connected, so that on_hall hears it go
            self._connected.clear()
            self._client = None
            self._lost.set()

    # ------------------------------------------------------------ requests

    async def request(self, message: m.Request) -> m.Reply:
        """Ask the hall and wait for its answer. Without one within the reply timeout,
        once reconnected after the connection it went out on was lost, or as soon as a
        new hall server connection comes online, ask again with the *same* id: the hall
        answers a repeated id with its kept reply and changes nothing, so a lost reply
        never makes a second ticket.

        The reply timer runs while the request is published: a publish whose
        connection died waits for its acknowledgement until aiomqtt gives up (10 s),
        and the reply is acknowledgement enough."""
        future: asyncio.Future[m.Reply] = asyncio.get_running_loop().create_future()
        self._pending[message.id] = future
        payload = m.encode(message)
        try:
            retry = False
            while True:
                await self._connected.wait()
                connection_lost, hall_back = self._lost, self._hall_back
                lost = asyncio.ensure_future(connection_lost.wait())
                back = asyncio.ensure_future(hall_back.wait())
                self.on_sent(message, retry)
                retry = True
                sending = asyncio.ensure_future(self._publish_event(payload))
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancellation that arrives with the reply, and the device would not stop.
                    async with asyncio.timeout(self.reply_timeout):
                        await asyncio.wait((future, lost, back),
                                           return_when=asyncio.FIRST_COMPLETED)
                except TimeoutError:
                    log.info("%s: no reply to %s %s within %g s; asking again with the same id",
                             self.id, message.type, message.id, self.reply_timeout)
                finally:
                    sending.cancel()
                    lost.cancel()
                    back.cancel()
                if future.done():
                    return future.result()
                if connection_lost.is_set():
                    log.info("%s: the connection was lost before the reply to %s %s; asking "
                             "again with the same id once reconnected", self.id, message.type,
                             message.id)
                elif hall_back.is_set():
                    log.info("%s: the hall server came online with %s %s unanswered; asking "
                             "again with the same id", self.id, message.type, message.id)
        finally:
            del self._pending[message.id]

    def on_sent(self, message: m.Request, retry: bool) -> None:
        """Called each time a request goes out, ``retry`` for the same id again."""

    async def _publish_event(self, payload: bytes) -> None:
        while True:
            await self._connected.wait()
            client = self._client
            if client is None:
                await asyncio.sleep(0.1)
                continue
            try:
                await client.publish(self.topic(Channel.EVENT), payload, qos=QOS)
                return
            except aiomqtt.MqttError as exc:
                still_cancelled(exc)
                await asyncio.sleep(0.5)  # the connection is going; wait for the next one

    # ------------------------------------------------------------- inbound

    def _receive(self, message: aiomqtt.Message) -> None:
        if str(message.topic) == self._server_topic:
            self._presence(message.payload, message.retain)
            return
        parsed = parse_topic(str(message.topic))
        if parsed is None or parsed.device_id != self.id:
            return
        raw = message.payload
        if not isinstance(raw, bytes | bytearray) or not raw:
            return  # a retained view being cleared
        try:
            if parsed.channel is Channel.REPLY:
                self._on_reply(m.decode_reply(raw))
            elif parsed.channel is Channel.CMD:
                self.on_command(m.decode_command(raw))
            elif parsed.channel is Channel.DISPLAY:
                self.on_display(m.decode_display(raw))
        except m.MessageError as exc:
            log.warning("%s: a bad %s message from the hall: %s", self.id, parsed.channel, exc)

    def _presence(self, raw: object, retained: bool) -> None:
        """Only a live ``online`` with a new ``since`` is a return to ask again on. The
        retained one that our subscription brought was published before it, so the
        hall was listening before anything we sent on this connection (and what went
        out on an earlier one is asked again anyway on reconnecting); if it is stale (a
        broker that kept it over a restart), the live one comes when the hall does.

        Anyone allowed to publish there could send junk: it is logged and changes
        nothing, the device goes on as it was."""
        if not isinstance(raw, bytes | bytearray) or not raw:
            return  # the retained presence being cleared
        try:
            presence = m.decode_presence(raw)
        except m.MessageError as exc:
            log.warning("%s: ignored a bad hall presence on %s: %s", self.id,
                        self._server_topic, exc)
            return
        self._hall_is(presence)
        if isinstance(presence, m.HallOnline) and presence.since != self._hall_since:
            self._hall_since = presence.since
            log.debug("%s: the hall server is online since %s", self.id,
                      presence.since.isoformat())
            if not retained:
                back, self._hall_back = self._hall_back, asyncio.Event()
                back.set()

    def _hall_is(self, presence: m.Presence | None) -> None:
        was = self.hall_online
        self._hall = presence
        if isinstance(presence, m.HallOffline) and was:
            log.debug("%s: the hall server is offline", self.id)
        if self.hall_online != was:
            self.on_hall(not was)

    def _on_reply(self, reply: m.Reply) -> None:
        if self.lose_reply(reply):
            return
        future = self._pending.get(reply.re)
        if future is not None and not future.done():
            future.set_result(reply)

    def lose_reply(self, reply: m.Reply) -> bool:
        """Whether to drop ``reply`` as if the network had lost it (simulations)."""
        return False

    def on_command(self, command: m.Command) -> None:
        log.debug("%s: ignored a %s command", self.id, command.type)

    def on_display(self, display: m.Display) -> None:
        log.debug("%s: ignored a %s view", self.id, display.type)


def _no_delay(client: aiomqtt.Client) -> None:
    """docs/mqtt.md, "Connecting": without TCP_NODELAY each round trip waits ~40 ms."""
    sock = client._client.socket()
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def stop_task(task: asyncio.Task[Any], *, every: float = 1.0) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again every ``every``
    seconds. On Python 3.11 aiomqtt waits with ``asyncio.wait_for``, which can swallow
    a cancellation that arrives just as what it waits for completes; the task then
    waits on in its message loop for ever (seen: an agent stopped right after its
    devices' births hung until systemd killed it)."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=every)
    if not task.cancelled() and task.exception() is not None:
        log.error("%s ended with an error while stopping", task.get_name(),
                  exc_info=task.exception())


def still_cancelled(error: aiomqtt.MqttError) -> None:
    """Raise CancelledError if this task was being cancelled when aiomqtt raised ``error``.

    On Python 3.11 aiomqtt waits with ``asyncio.wait_for``, which can swallow a
    cancellation that arrives as the connection fails; a device that then retried
    would never stop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from error


def forget_disconnection(client: aiomqtt.Client) -> None:
    """aiomqtt keeps why a connection dropped in a future that only its message loop
    reads; read it, so that a broker going away while we stop (Ctrl-C reaches the demo's
    own broker too) is not reported as an exception nobody retrieved."""
    dropped = client._disconnected
    if dropped.done() and not dropped.cancelled():
        dropped.exception()
