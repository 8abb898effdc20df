"""The hall's side of the device bus (docs/mqtt.md).

One MQTT connection for the hall. What devices send (birth, last will,
health, requests) is checked at the boundary and goes to the registry or,
for requests, through the same runtime as the REST API. Every request is
answered once: the answer is stored in the same transaction as the change
it made, so a retry after a lost answer gets the answer again and never a
second ticket or a second call. Requests from one device are handled in
order, different devices concurrently (so their changes share commits).
What screens show is published retained and whole, so a screen that comes
back resyncs from the broker alone. The hall's presence, retained on
``hall/<hall_id>/$server``, tells devices when it is listening again, so that
they ask again at once what they sent while it was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as dt_time
from typing import Any

import aiomqtt
import paho.mqtt.client as paho_mqtt

from devices import messages as m
from devices.broker_url import BrokerAddress
from devices.registry import DeviceChange, DeviceSpec, PrintJobs, PrintProblem
from devices.topics import (
    Channel,
    DeviceKind,
    parse_topic,
    server_topic,
    subscriptions,
    topic,
)
from hall.checkin import CheckInRefused, check_in
from hall.client_views import Displays, Scope
from hall.committer import CommitFailed
from hall.device_store import DeviceStore, KeptReply
from hall.evaluations import Evaluations, RatingRefused
from hall.eventstore import StoredEvent
from hall.hall_events import DeviceChanged, EvaluationRequested, ScanFinished, ScanRequested
from hall.pii import Identity, mask_id_number, mask_name
from hall.priority import PriorityRefused
from hall.runtime import Unavailable
from hall.server import HallServer
from hall.time_nodes import ScanRefused
from hall.views import service_views, ticket_view, window_view
from queueing import Event, Rejected, Source
from queueing import Status as TicketStatus

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 200
BOARD_EVERY = 0.2
"""Seconds a hall board may lag behind changed waiting counts: every ticket
changes them, and boards need not redraw faster than people read. Calls are
shown at once."""
MQTT_LOG = logging.getLogger("hall.device_link.mqtt")
MQTT_LOG.setLevel(logging.ERROR)
"""aiomqtt warns of "pending publish calls" past ten in flight, which the
hall's one connection always has; its errors still show."""
RATE_PER_SECOND = 20.0
"""A device's steady message rate; a person pressing buttons stays far below."""
BURST = 40.0
OUTSIDE_SCHEME = "(topics outside the scheme)"
"""The rate bucket of messages whose topic names no device to throttle alone; not
a device id (devices.topics.ID_PATTERN), so no device shares it."""
TELL_EVERY_S = 1.0
"""How often a device over its rate is answered rate_limited (the rest is dropped unread)."""
KEPT_FOR_S = 86_400.0
"""How long a retry finds its request's kept reply (docs/mqtt.md: a day)."""


class TokenBucket:
    """Per-device rate limit: one device flooding the bus is cut off alone."""

    __slots__ = ("dropped", "tokens", "told", "updated")

    def __init__(self) -> None:
        self.tokens = BURST
        self.updated = time.monotonic()
        self.dropped = 0
        self.told = float("-inf")
        """When the device was last answered rate_limited."""

    def may_tell(self) -> bool:
        """At most one rate_limited answer a second: answering every dropped message
        would let a flood make the hall flood back."""
        now = time.monotonic()
        if now - self.told < TELL_EVERY_S:
            return False
        self.told = now
        return True

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.updated) * RATE_PER_SECOND)
        self.updated = now
        if self.tokens < 1.0:
            self.dropped += 1
            return False
        self.tokens -= 1.0
        return True


@dataclass(frozen=True, slots=True)
class Outgoing:
    topic: str
    payload: bytes
    retain: bool
    qos: int


def _hand_over(paho: paho_mqtt.Client, queue: deque[Outgoing]) -> None:
    while queue:
        _publish(paho, queue.popleft())


def _publish(paho: paho_mqtt.Client, item: Outgoing) -> None:
    info = paho.publish(item.topic, item.payload, qos=item.qos, retain=item.retain)
    if info.rc != paho_mqtt.MQTT_ERR_SUCCESS:
        log.warning("publish to %s failed: %s", item.topic, paho_mqtt.error_string(info.rc))


def _write_now(paho: paho_mqtt.Client) -> None:
    """Write what paho has queued, now. Its own ``loop_write`` would also drop the
    writer aiomqtt is about to add, which then never goes away; so the packet
    writer itself, leaving the registered writer to find nothing left and go. A
    write that fails is left queued: that writer meets the same error and aiomqtt
    handles the lost connection as always."""
    if paho.socket() is not None:
        paho._packet_write()


class DeviceLink:
    def __init__(self, server: HallServer, url: str) -> None:
        """A ``url`` that cannot be used raises ValueError here: start-up says so
        instead of the link retrying for ever."""
        self.server = server
        self.url = url
        self.broker = BrokerAddress.parse(url)
        self.registry = server.devices
        self.hall_id = server.config.layout.hall_id
        self.store = DeviceStore(server.pool, self.hall_id)
        self.connected = asyncio.Event()
        self._urgent: deque[Outgoing] = deque()
        """Replies and commands posted while there is no connection: someone waits on
        them, so they go first when there is one again."""
        self._views: deque[Outgoing] = deque()
        self._wire: paho_mqtt.Client | None = None
        """paho's client under the connection while ``_send`` runs on it: replies and
        commands are written to it as they are posted."""
        self._device_locks: dict[str, asyncio.Lock] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._board_refresh: asyncio.TimerHandle | None = None
        self._staff_names: dict[str, str] = {}
        registry = self.registry
        self._displays = Displays(server.runtime, self._staff_names, registry.all,
                                  lambda: registry.spec_version)
        self._outbox_ready = asyncio.Event()
        """Something to send or to draw: set by _post and by committed events."""
        self._calls_due: list[m.CallView] = []
        self._screens_due: set[str] = set()
        self._scopes_due: set[Scope] = set()
        self._asked: dict[tuple[str, str], float] = {}
        """(device, request id) of the last day's requests, oldest first: only
        these may have a kept reply."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._connect_hooks: list[Callable[[], None]] = []
        server.runtime.bus.subscribe(self._on_events)
        server.metrics.watch_devices(self.registry)
        server.signage.attach(self)
        server.printer = self

    # ------------------------------------------------------------ connection

    async def run(self) -> None:
        """Stay connected for as long as the hall runs; reconnect with backoff."""
        await self._load_staff_names()
        await self._load_approvals()
        await self._load_asked()
        delay = 0.5
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                if self.connected.is_set():
                    delay = 0.5  # a new outage: the last one's backoff would slow each return
                self.connected.clear()
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # being stopped: a dropped connection is no reason to retry
                log.warning("device bus connection lost (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _session(self) -> None:
        """Presence (docs/mqtt.md, "Hall presence"): the will says offline if this
        connection dies; online goes out only once subscribed, so a device that asks
        again on seeing it is heard."""
        broker = self.broker
        presence = server_topic(self.hall_id)
        async with aiomqtt.Client(
            hostname=broker.host,
            port=broker.port,
            username=broker.username,
            password=broker.password,
            tls_context=broker.tls_context(),
            identifier=f"hall-server-{self.hall_id}",
            clean_session=True,
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            max_inflight_messages=MAX_IN_FLIGHT,
            logger=MQTT_LOG,
            will=aiomqtt.Will(presence, m.encode(m.HallOffline()), qos=1, retain=True),
        ) as client:
            try:
                for pattern in subscriptions(self.hall_id):
                    await client.subscribe(pattern, qos=1)
                await client.publish(presence, m.encode(self._online()), qos=1, retain=True)
                self.connected.set()
                log.info("device bus connected at %s:%d%s", broker.host, broker.port,
                         " (TLS)" if broker.tls else "")
                await self._listen(client)
            except asyncio.CancelledError:
                await self._say_offline(client, presence)
                raise

    async def _listen(self, client: aiomqtt.Client) -> None:
        self._publish_all_displays()
        sender = asyncio.create_task(self._send(client))
        try:
            async for message in client.messages:
                self._receive(message)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    def _online(self) -> m.HallOnline:
        """Wall time, not the hall's clock (which tests may hold still): a device tells
        this connection from the last one by ``since`` alone."""
        return m.HallOnline(since=datetime.now(self.server.config.timezone))

    async def _say_offline(self, client: aiomqtt.Client, presence: str) -> None:
        """Stopped cleanly (the hall stops, or its city process hands it to another):
        the clean DISCONNECT that follows cancels the will, so say it ourselves. Briefly:
        a broker that does not answer must not hold the stop up."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(2):
                await client.publish(presence, m.encode(m.HallOffline()), qos=1, retain=True)

    async def _send(self, client: aiomqtt.Client) -> None:
        """Every message is handed to paho at once, without waiting for its
        acknowledgement: paho keeps up to MAX_IN_FLIGHT unacknowledged, queues the
        rest and sends them in order, so a screen still gets its views in order.
        aiomqtt's ``publish`` has no form that does not wait, and waiting (a task,
        an event, a timer and a semaphore per message) was the largest cost of a
        city process leading a hundred halls (bench/city.py), so this reaches
        paho's client under it (aiomqtt and paho are pinned).

        A reply or command is written to the socket by whoever posts it, while
        this task runs (``_post``): waking this task for it cost two turns of the
        loop. A commit wakes this task and the requests it answered together;
        this task lets them go first (one turn of the loop), so their replies are
        on the wire before it draws the views and sends them. Left to aiomqtt,
        paho's bytes go out two turns of the loop later (it registers a writer
        through ``call_soon_threadsafe``), after every view had been drawn and
        queued behind the replies (bench/devices.py)."""
        paho = client._client
        _hand_over(paho, self._urgent)
        _write_now(paho)
        self._wire = paho
        try:
            while True:
                await self._outbox_ready.wait()
                await asyncio.sleep(0)
                self._outbox_ready.clear()
                self._draw_due()
                _hand_over(paho, self._views)
                _write_now(paho)
        finally:
            self._wire = None

    def publish_display(self, device_id: str, payload: bytes) -> None:
        """A view from another part of the hall (signage: hall/signage_publisher.py) for a
        display device, retained on its ``display`` topic. The device's live view follows
        it again, so what the broker keeps for the device stays the live view it resyncs
        from (docs/mqtt.md, "Signage")."""
        self._post(device_id, Channel.DISPLAY, payload)
        self._republish_for(device_id)

    def on_connected(self, hook: Callable[[], None]) -> None:
        """``hook`` runs after every (re)connection, as the live views are sent again."""
        self._connect_hooks.append(hook)

    def _post(self, device_id: str, channel: Channel, payload: bytes) -> None:
        """Replies and commands go before views: someone waits on a reply.
        Within one priority, order is kept, so a screen gets its views in order.
        Nothing over the protocol's size limit is sent: devices refuse it."""
        if len(payload) > m.MAX_MESSAGE_BYTES:
            log.error("not sent to %s: a %d-byte %s message is over the protocol's %d-byte "
                      "limit", device_id, len(payload), channel, m.MAX_MESSAGE_BYTES)
            return
        view = channel is Channel.DISPLAY
        # A view at QoS 0: each replaces the last, the broker keeps the latest for a
        # screen that reconnects, and the hall sends them all again when it does; an
        # acknowledgement for every one of them only cost (docs/mqtt.md, "Topics").
        outgoing = Outgoing(topic(self.hall_id, device_id, channel), payload, channel.retained,
                            qos=0 if view else 1)
        wire = self._wire
        if view:
            self._views.append(outgoing)
        elif wire is not None:  # _send handed _urgent over before it set _wire
            _publish(wire, outgoing)
            _write_now(wire)
            return
        else:
            self._urgent.append(outgoing)
        self._outbox_ready.set()

    # --------------------------------------------------------------- inbound

    def _receive(self, message: aiomqtt.Message) -> None:
        parsed = parse_topic(str(message.topic))
        if parsed is None or parsed.hall_id != self.hall_id:
            if self._within_rate(OUTSIDE_SCHEME):  # else a flood of them floods the log
                log.warning("ignored a message on a topic outside the scheme: %s", message.topic)
            return
        raw = message.payload if isinstance(message.payload, bytes) else b""
        if parsed.channel is not Channel.STATUS and not self._within_rate(parsed.device_id):
            if parsed.channel is Channel.EVENT:
                self._tell_over_rate(parsed.device_id, raw)
            return
        now = self.server.runtime.clock.now()
        self._changed(self.registry.seen(parsed.device_id, now))
        try:
            if parsed.channel is Channel.STATUS:
                self._status(parsed.device_id, raw)
            elif parsed.channel is Channel.STATE:
                self._state(parsed.device_id, raw)
            elif parsed.channel is Channel.EVENT:
                self._spawn(self._request(parsed.device_id, raw))
        except m.MessageError as exc:
            if parsed.channel is Channel.STATUS and not self._within_rate(parsed.device_id):
                return  # garbage is throttled here too; only a real birth or will never is
            log.warning("device %s sent a bad %s message: %s", parsed.device_id, parsed.channel,
                        exc)

    def _within_rate(self, device_id: str) -> bool:
        bucket = self._buckets.setdefault(device_id, TokenBucket())
        if bucket.take():
            return True
        if bucket.dropped in (1, 100) or bucket.dropped % 1000 == 0:
            log.warning("device %s floods the bus: %d messages dropped", device_id,
                        bucket.dropped)
        return False

    def _tell_over_rate(self, device_id: str, raw: bytes) -> None:
        """A device that bursts past its rate hears so at once instead of waiting out its
        reply timeout; the request is not read, so asking again later is safe."""
        if not self._buckets[device_id].may_tell():
            return
        request_id = m.request_id_of(raw)
        if request_id is not None:
            self._reply(device_id, m.Reply.failure(
                request_id, m.ErrorCode.RATE_LIMITED,
                f"more than {RATE_PER_SECOND:.0f} messages a second from this device: "
                "not read; ask again in a moment"))

    def _status(self, device_id: str, raw: bytes) -> None:
        if not raw:
            return  # a retained status being cleared
        status = m.decode_status(raw)
        now = self.server.runtime.clock.now()
        if isinstance(status, m.Birth):
            self._changed(self.registry.came_online(
                device_id, status.kind, status.firmware, status.config_version, now))
            self._republish_for(device_id)
        else:
            self._changed(self.registry.went_offline(device_id, now))

    def _state(self, device_id: str, raw: bytes) -> None:
        if not raw:
            return
        state = m.decode_state(raw)
        health = state.health
        self._changed(self.registry.health(
            device_id, health.paper, health.cover, tuple(health.errors),
            self.server.runtime.clock.now()))

    def _changed(self, changes: list[DeviceChange]) -> None:
        """Device changes go into the hall's event log, so the status wall
        gets them on the event stream like any other event; /metrics reads
        the registry itself."""
        if not changes:
            return
        events: list[Event] = []
        for change in changes:
            log.info("device %s: %s %s", change.device_id, change.type, change.detail)
            status = self.registry.status(change.device_id)
            spec = status.spec if status is not None else None
            events.append(DeviceChanged(
                change.at, change.device_id, change.type.removeprefix("device."),
                status.kind.value if status is not None and status.kind else None,
                spec.window if spec else None, spec.area if spec else None,
                bool(status and status.online), status.paper if status else "ok",
                status.cover if status else "closed", tuple(status.errors) if status else ()))
        self._spawn(self._record(events))

    async def _record(self, events: list[Event]) -> None:
        try:
            await self.server.runtime.record(events)
        except (Unavailable, CommitFailed) as exc:
            log.warning("device changes not logged: %s", exc)

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _request(self, device_id: str, raw: bytes) -> None:
        try:
            request = m.decode_request(raw)
        except m.MessageError as exc:
            log.warning("device %s sent a bad request: %s", device_id, exc)
            if exc.request_id is not None:
                self._reply(device_id, m.Reply.failure(exc.request_id, exc.code, exc.message))
            return
        lock = self._device_locks.setdefault(device_id, asyncio.Lock())
        async with lock:
            try:
                await self._answer(device_id, request)
            except Exception:
                log.exception("request %s from %s failed", request.id, device_id)
                self._reply(device_id, m.Reply.failure(
                    request.id, "internal_error", "the hall could not handle this request"))

    async def _answer(self, device_id: str, request: m.Request) -> None:
        kept = await self._kept_reply(device_id, request.id)
        if kept is not None:
            self._post(device_id, Channel.REPLY, kept)
            return
        spec = self._spec(device_id)
        if spec is None:
            self._reply(device_id, m.Reply.failure(
                request.id, m.ErrorCode.UNKNOWN_DEVICE,
                "this device is not in the hall's configuration; a manager must approve it"))
            return
        if spec.kind not in type(request).senders:
            self._reply(device_id, m.Reply.failure(
                request.id, m.ErrorCode.NOT_ALLOWED,
                f"a {spec.kind} may not send {request.type}"))
            return
        try:
            reply = await self._dispatch(device_id, spec, request)
        except Rejected as refused:
            reply = m.Reply.failure(request.id, refused.reason.value, refused.detail)
        except m.MessageError as exc:
            reply = m.Reply.failure(request.id, exc.code, exc.message)
        except (Unavailable, CommitFailed) as exc:
            self._reply(device_id, m.Reply.failure(request.id, "unavailable", str(exc)))
            return  # not kept: the same request may succeed once storage is back
        if reply is None:
            return
        if not reply.ok:
            await self.store.keep_reply(device_id, request.id, m.encode(reply))
        self._reply(device_id, reply)

    def _reply(self, device_id: str, reply: m.Reply) -> None:
        payload = m.encode(reply)
        if len(payload) > m.MAX_MESSAGE_BYTES:
            log.error("the reply to %s's request %s is %d bytes, over the protocol's %d-byte "
                      "limit: answered too_large instead", device_id, reply.re, len(payload),
                      m.MAX_MESSAGE_BYTES)
            payload = m.encode(m.Reply.failure(
                reply.re, m.ErrorCode.TOO_LARGE, "the answer is too large for the device bus"))
        self._post(device_id, Channel.REPLY, payload)

    # ------------------------------------------------------------- requests

    def _spec(self, device_id: str) -> DeviceSpec | None:
        status = self.registry.status(device_id)
        return None if status is None else status.spec

    async def _dispatch(
        self, device_id: str, spec: DeviceSpec, request: m.Request
    ) -> m.Reply | None:
        match request:
            case m.KioskServices():
                return m.Reply.success(request.id, {"services": self._services()})
            case m.TakeTicket():
                return await self._take_ticket(device_id, request)
            case m.Rate():
                return await self._rate(device_id, spec, request)
            case m.PrintDone() | m.PrintFailed():
                self._print_answered(device_id, request)
                return m.Reply.success(request.id, {})
            case m.CardRead():
                return await self._card_read(spec, request)
            case m.ScanDone() | m.ScanFailed():
                return await self._scan_finished(device_id, spec, request)
        if spec.window is None:
            raise m.MessageError(m.ErrorCode.NOT_ALLOWED, "this device is at no window")
        if isinstance(request, m.AskEvaluation):
            return await self._ask_evaluation(spec.window, request)
        if isinstance(request, m.ScanTicket):
            return await self._scan_ticket(device_id, spec.window, request)
        return await self._window_request(device_id, spec.window, request)

    async def _take_ticket(self, device_id: str, request: m.TakeTicket) -> m.Reply:
        problem = self.registry.print_problem(device_id)
        if problem is not None:
            raise m.MessageError(m.ErrorCode.PRINTER_OFFLINE, PRINT_PROBLEMS[problem])
        server = self.server
        if request.priority_group is not None:
            assert request.priority_password is not None
            try:
                await server.priority.check(
                    device_id, request.priority_group, request.priority_password)
            except PriorityRefused as refused:
                raise m.MessageError(refused.code, refused.message) from refused
        citizen: int | None = None
        source = Source.WALK_IN
        if request.identity is not None:
            identity = request.identity
            citizen = await server.citizens.save(
                Identity(identity.name, identity.id_number, identity.phone))
            source = Source.ID_CARD if identity.id_number else Source.PHONE
        elif request.phone is not None:
            citizen = await server.citizens.save(Identity(None, None, request.phone))
            source = Source.PHONE
        if request.priority_group is not None:
            source = Source.PRIORITY
        kept: list[m.Reply] = []

        def answer(stored: list[StoredEvent]) -> list[KeptReply]:
            ticket = server.runtime.engine.ticket(stored[0].event.ticket_id)  # type: ignore[attr-defined]
            reply = m.Reply.success(request.id, {"ticket": self._ticket_view(ticket.id)})
            kept.append(reply)
            return [KeptReply(device_id, request.id, m.encode(reply))]

        if request.appointment_code is not None:
            try:
                await check_in(server, request.appointment_code, side=answer)
            except CheckInRefused as refused:
                raise m.MessageError(refused.code, refused.message) from refused
            self._print(device_id, request.id, kept[0])
            return kept[0]
        assert request.service is not None
        try:
            await server.runtime.execute(
                "issue", request.service, source,
                citizen_ref=None if citizen is None else str(citizen),
                priority_group=request.priority_group, side=answer,
            )
        except BaseException:
            if citizen is not None:
                await server.citizens.forget(citizen)
            raise
        reply = kept[0]
        self._print(device_id, request.id, reply)
        return reply

    async def _window_request(self, device_id: str, window: str, request: m.Request) -> m.Reply:
        runtime = self.server.runtime
        operation, args, kwargs = await self._window_operation(request)
        kept: list[m.Reply] = []

        def answer(stored: list[StoredEvent]) -> list[KeptReply]:
            reply = m.Reply.success(request.id, {"window": self._window_view(window)})
            kept.append(reply)
            return [KeptReply(device_id, request.id, m.encode(reply))]

        await runtime.execute(operation, window, *args, side=answer, **kwargs)
        return kept[0]

    async def _window_operation(
        self, request: m.Request
    ) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        match request:
            case m.Login(staff_id=staff_id, password=password):
                principal = await self.server.staff.authenticate(staff_id, password or "")
                if principal is None:
                    raise m.MessageError("bad_credentials", "unknown staff or wrong password")
                self._staff_names[principal.id] = principal.name
                return "login", (staff_id,), {}
            case m.CallTicket(ticket_id=ticket_id):
                return "call_ticket", (ticket_id,), {}
            case m.Release(ticket_id=ticket_id):
                return "release", (ticket_id,), {}
            case m.Transfer(service=service, window=to_window):
                return "transfer", (), {"to_service": service, "to_window": to_window}
            case m.Pause(reason=reason, message=message):
                return "pause", (reason,), {"message": message}
        simple = WINDOW_OPERATIONS.get(type(request))
        if simple is None:
            raise m.MessageError("unknown_request", f"{type(request).__name__} is not for a window")
        return simple, (), {}

    async def _rate(self, device_id: str, spec: DeviceSpec, request: m.Rate) -> m.Reply:
        if spec.window is None:
            raise m.MessageError(m.ErrorCode.NOT_ALLOWED, "this device is at no window")
        server = self.server
        staff = server.runtime.engine.window(spec.window).staff
        try:
            await Evaluations(server.runtime, server.pool).rate(
                request.ticket_id, spec.window, staff, request.rating, request.reasons,
                via="device", device_id=device_id)
        except RatingRefused as refused:
            raise m.MessageError(refused.code, refused.message) from refused
        reply = m.Reply.success(request.id, {"ticket": request.ticket_id,
                                             "rating": request.rating})
        await self.store.keep_reply(device_id, request.id, m.encode(reply))
        return reply

    async def _scan_ticket(self, device_id: str, window: str, request: m.ScanTicket) -> m.Reply:
        """D12 (hall/time_nodes.py). The answer is kept, so a retried scan never
        moves the ticket a second step."""
        try:
            result = await self.server.time_nodes.scan(window, request.code, device_id)
        except ScanRefused as refused:
            raise m.MessageError(refused.code, refused.message) from refused
        reply = m.Reply.success(request.id, {
            "action": result.action, "ticket_id": result.ticket_id,
            "number": result.node.number, "window": self._window_view(window)})
        await self.store.keep_reply(device_id, request.id, m.encode(reply))
        return reply

    # -------------------------------------------------------------- outbound

    def print_ticket(self, kiosk_id: str, ticket_id: str) -> None:
        """Print a ticket the kiosk's page took over REST (hall/kiosk_print.py); the job's
        id, which ``printer.done`` or ``printer.failed`` answer, is ``rest-<ticket id>``."""
        reply = m.Reply.success(f"rest-{ticket_id}", {"ticket": self._ticket_view(ticket_id)})
        self._print(kiosk_id, f"rest-{ticket_id}", reply)

    def _print(self, kiosk_id: str, request_id: str, reply: m.Reply) -> None:
        assert reply.result is not None
        ticket = reply.result["ticket"]
        job = m.PrintJob(id=request_id, ticket=m.TicketPrint(
            number=ticket["number"], service_name=ticket["service_name"],
            people_ahead=ticket["people_ahead"], estimated_minutes=ticket["estimated_minutes"],
            direction=ticket["direction"], materials=ticket["materials"],
            notice=ticket["notice"], issued_at=datetime.fromisoformat(ticket["issued_at"]),
            qr=ticket["id"]))
        printer = self.registry.printer_of(kiosk_id)
        target = kiosk_id if printer is None else printer.id
        if target != kiosk_id:
            self._print_jobs().sent(request_id, kiosk_id, target, ticket["id"], ticket["number"],
                                    time.monotonic())
            self._follow_prints()
        self._post(target, Channel.CMD, m.encode(job))

    def _print_jobs(self) -> PrintJobs:
        """Jobs out at stand-alone printers; made with the first such job."""
        jobs: PrintJobs | None = getattr(self, "_pending_prints", None)
        if jobs is None:
            jobs = self._pending_prints = PrintJobs(PRINT_TIMEOUT)
        return jobs

    def _follow_prints(self) -> None:
        """Look at the pending jobs' printers until no job is left, so a last will
        or a silent printer reaches the kiosk within a bounded time."""
        if getattr(self, "_following_prints", False):
            return
        self._following_prints = True
        self._spawn(self._watch_prints())

    async def _watch_prints(self) -> None:
        jobs = self._print_jobs()
        try:
            while len(jobs):
                await asyncio.sleep(PRINT_CHECK_EVERY)
                for job, reason in jobs.lost(self.registry, time.monotonic()):
                    log.warning("print job %s for %s at %s lost: %s", job.id, job.number,
                                job.printer, reason)
                    self._print_failed(job.id, job.kiosk, job.ticket_id, job.number, reason)
        finally:
            self._following_prints = False

    def _print_answered(self, device_id: str, answer: m.PrintDone | m.PrintFailed) -> None:
        """A stand-alone printer's answer ends its job; a failure is relayed to the
        kiosk, whose citizen is still there. A kiosk's own printer needs no relay."""
        jobs: PrintJobs | None = getattr(self, "_pending_prints", None)
        job = None if jobs is None else jobs.answered(answer.job, device_id)
        if job is not None and isinstance(answer, m.PrintFailed):
            log.warning("print job %s for %s failed at %s: %s", job.id, job.number, device_id,
                        answer.reason)
            self._print_failed(job.id, job.kiosk, job.ticket_id, job.number, "printer_failed")

    def _print_failed(
        self, job_id: str, kiosk_id: str, ticket_id: str, number: str, reason: str
    ) -> None:
        command = m.KioskPrintFailed(
            id=job_id, ticket_id=ticket_id, number=number,
            reason=reason,  # type: ignore[arg-type]
            message=PRINT_FAILURES[reason].format(number=number))
        self._post(kiosk_id, Channel.CMD, m.encode(command))

    async def _card_read(self, spec: DeviceSpec, request: m.CardRead) -> m.Reply:
        """What the hall knows of the card's holder today (D6): open tickets, today's
        appointments, and the progress of cases their tickets opened, found through
        the ID number's lookup hash. A reader at a window faces staff and gets
        names and appointment codes in full; any other reader (a query terminal in
        the hall, whose screen passers-by see) gets them masked. The answer holds
        personal data, so it is not kept for retries: a retry asks again."""
        identity = request.identity
        assert identity.id_number is not None
        server = self.server
        engine = server.runtime.engine
        citizen_ids = sorted(set(await server.citizens.find_by_id_number(identity.id_number)))
        refs = {str(citizen) for citizen in citizen_ids}
        mine = [ticket for ticket in engine.tickets() if ticket.citizen_ref in refs]
        zone = server.config.timezone
        today = engine.day or server.runtime.clock.now().astimezone(zone).date()
        since = datetime.combine(today, dt_time(0), zone)
        appointments = await server.citizens.appointments_of(
            citizen_ids, since, since + timedelta(days=1))
        linked = {t.id for t in mine} | {a.ticket_id for a in appointments if a.ticket_id}
        latest = {p.case_id: p for p in await server.citizens.progress_of(sorted(linked))}
        masked = spec.window is None
        services = engine.layout.services
        return m.Reply.success(request.id, {
            "holder": {
                "name": mask_name(identity.name) if masked else identity.name,
                "id_number": mask_id_number(identity.id_number) if masked
                else identity.id_number,
            },
            "masked": masked,
            "tickets": [self._holder_ticket(t.id) for t in mine if not t.status.is_final],
            "appointments": [{
                # an appointment code checks the booking in, so a public screen hides it
                "code": mask_id_number(a.code) if masked else a.code,
                "service": a.service,
                "service_name": services[a.service].name if a.service in services else "",
                "slot_start": a.slot_start.astimezone(zone).isoformat(),
                "slot_end": a.slot_end.astimezone(zone).isoformat(),
                "status": a.status, "ticket_id": a.ticket_id,
            } for a in appointments],
            "cases": [{
                "case_id": p.case_id, "ticket_id": p.ticket_id, "status": p.status,
                "message": p.message, "at": p.at.astimezone(zone).isoformat(),
            } for p in latest.values()],
        })

    def _holder_ticket(self, ticket_id: str) -> dict[str, Any]:
        engine = self.server.runtime.engine
        ticket = engine.ticket(ticket_id)
        waiting = ticket.status is TicketStatus.WAITING
        estimate = engine.ticket_estimate(ticket_id) if waiting else None
        return {
            "id": ticket.id, "number": ticket.number, "service": ticket.service,
            "service_name": engine.layout.services[ticket.service].name,
            "state": ticket.status.value,
            "people_ahead": estimate.people_ahead if estimate else None,
            "estimated_minutes": None if estimate is None or estimate.minutes is None
            else round(estimate.minutes, 1),
            "window": engine.layout.windows[ticket.window].name if ticket.window else None,
        }

    async def _ask_evaluation(self, window: str, request: m.AskEvaluation) -> m.Reply:
        """Put the evaluation screen up for the ticket in hand (D10), with the
        token an evaluation page off the bus rates with over REST."""
        engine = self.server.runtime.engine
        current = engine.current_ticket(window)
        if current is None:
            raise m.MessageError("no_current_ticket", "nobody is being served at this window")
        staff = engine.window(window).staff
        terminals = [
            status.id for status in self.registry.by_window(window)
            if status.kind is DeviceKind.EVALUATION_TERMINAL
        ]
        token = await Evaluations(self.server.runtime, self.server.pool).grant(
            current.id, window, staff)
        await self.server.runtime.record([EvaluationRequested(
            self.server.runtime.clock.now(), current.id, current.number, window, staff)])
        command = m.EvaluationRequest(
            id=request.id, ticket_id=current.id, number=current.number, window=window,
            window_name=engine.window(window).config.name,
            staff_name=self._staff_names.get(staff or "", staff or ""), token=token)
        for terminal in terminals:
            self._post(terminal, Channel.CMD, m.encode(command))
        return m.Reply.success(request.id, {"ticket_id": current.id, "terminals": terminals})

    def _send_scan(self, requested: ScanRequested) -> None:
        command = m.ScanDocument(id=requested.job, case_id=requested.case_id,
                                 paper=requested.paper,  # type: ignore[arg-type]
                                 dpi=requested.dpi, format=requested.format)  # type: ignore[arg-type]
        for camera in requested.cameras:
            self._post(camera, Channel.CMD, m.encode(command))

    async def _scan_finished(
        self, device_id: str, spec: DeviceSpec, request: m.ScanDone | m.ScanFailed
    ) -> m.Reply:
        """The outcome goes on the stream, where the clerk's page waits for its job."""
        done = isinstance(request, m.ScanDone)
        finished = ScanFinished(
            at=self.server.runtime.clock.now(), window_id=spec.window, job=request.job,
            case_id=request.case_id, device_id=device_id, ok=done,
            document_id=request.document_id if isinstance(request, m.ScanDone) else None,
            reason=request.reason if isinstance(request, m.ScanFailed) else None)
        await self.server.runtime.record([finished])
        return m.Reply.success(request.id, {})

    def _on_events(self, events: Sequence[StoredEvent]) -> None:
        """Committed events change what screens show and what is announced.
        Only noted here: the sender draws the views once the answers this
        commit woke up are posted, so a reply never waits behind its screens.
        A scan a clerk asked for goes to the window's cameras at once."""
        for stored in events:
            if isinstance(stored.event, ScanRequested):
                self._send_scan(stored.event)
        screens, scopes, calls = self._displays.note([stored.event for stored in events])
        self._calls_due += calls
        self._screens_due |= screens
        self._scopes_due |= scopes
        if screens or scopes or calls:
            self._outbox_ready.set()
        if self._board_refresh is None and any(
                stored.event.type.startswith("ticket.") for stored in events):
            self._board_refresh = asyncio.get_running_loop().call_later(
                BOARD_EVERY, self._refresh_boards)

    def _refresh_boards(self) -> None:
        """Waiting counts change with every ticket: every board is redrawn at
        this pace, and only those whose view changed are sent."""
        self._board_refresh = None
        self._scopes_due.update(self._displays.audience().boards)
        self._outbox_ready.set()

    def _draw_due(self) -> None:
        """Announce the calls and draw the due views, each view once, for every
        device that shows it."""
        displays = self._displays
        audience = displays.audience()
        seq = self.server.runtime.committer.next_seq
        calls, self._calls_due = self._calls_due, []
        for call in calls:
            text = f"请{call.number}号到{call.window_name}办理"
            for announcer in audience.announcers:
                announce = m.Announce(id=f"call-{call.number}-{announcer}", text=text)
                self._post(announcer, Channel.CMD, m.encode(announce))
        screens, self._screens_due = self._screens_due, set()
        for screen in screens:
            if screen in audience.screens:
                self._post_view(audience.screens[screen], displays.screen(screen, seq))
        scopes, self._scopes_due = self._scopes_due, set()
        for scope in scopes:
            if scope in audience.boards:
                self._post_view(audience.boards[scope], displays.board(scope, seq))

    def _post_view(self, device_ids: Sequence[str], payload: bytes | None) -> None:
        if payload is not None:
            for device_id in device_ids:
                self._post(device_id, Channel.DISPLAY, payload)

    def _publish_all_displays(self) -> None:
        """After (re)connecting: every view, whatever was sent before."""
        self._displays.resync()
        audience = self._displays.audience()
        self._screens_due.update(audience.screens)
        self._scopes_due.update(audience.boards)
        self._outbox_ready.set()
        for hook in self._connect_hooks:
            hook()

    def _republish_for(self, device_id: str) -> None:
        """Retained views already resync a screen; this refreshes the broker's copy."""
        spec = self._spec(device_id)
        if spec is None:
            return
        displays = self._displays
        audience = displays.audience()  # rebuilt if the device was approved since
        if device_id in audience.screen_of:
            screen = audience.screen_of[device_id]
            displays.resend_screen(screen)
            self._screens_due.add(screen)
        elif device_id in audience.scope_of:
            scope = audience.scope_of[device_id]
            displays.resend_board(scope)
            self._scopes_due.add(scope)
        self._outbox_ready.set()

    # ---------------------------------------------------------------- views

    def _services(self) -> list[dict[str, Any]]:
        return [
            {"id": s.id, "name": s.name, "category": s.category, "open": s.open,
             "waiting": s.waiting, "estimated_minutes": s.estimated_minutes}
            for s in service_views(self.server.runtime)
        ]

    def _ticket_view(self, ticket_id: str) -> dict[str, Any]:
        view = ticket_view(self.server.runtime, ticket_id)
        text = view.text
        return {
            "id": view.id, "number": view.number, "service": view.service,
            "service_name": view.service_name, "people_ahead": view.people_ahead,
            "estimated_minutes": view.estimated_minutes,
            "direction": text.direction if text else "",
            "materials": list(text.materials) if text else [],
            "notice": text.notice if text else "",
            "issued_at": view.issued_at.isoformat(),
        }

    def _window_view(self, window_id: str) -> dict[str, Any]:
        view = window_view(self.server.runtime, window_id)
        return {
            "window": view.id, "state": view.state, "staff": view.staff,
            "number": view.ticket, "ticket_id": view.ticket_id,
        }

    async def _load_approvals(self) -> None:
        """Devices a manager let in stay let in across restarts."""
        now = self.server.runtime.clock.now()
        for approval in await self.store.approvals():
            spec = DeviceSpec(approval.device_id, DeviceKind(approval.kind), approval.name,
                              approval.area, approval.window, approval.screen)
            if not self.registry.is_allowed(spec.id):
                self._changed(self.registry.approve(spec.id, spec, approval.approved_by, now))

    async def _kept_reply(self, device_id: str, request_id: str) -> bytes | None:
        """Only a (device, id) asked before can have a kept reply: the database
        is asked only then, which spares every new request a round trip."""
        key = (device_id, request_id)
        now = time.monotonic()
        if key not in self._asked:
            self._asked[key] = now  # before anything can be kept under it
            while self._asked:
                oldest, at = next(iter(self._asked.items()))
                if now - at < KEPT_FOR_S:
                    break
                del self._asked[oldest]
            return None
        return await self.store.kept_reply(device_id, request_id)

    async def _load_asked(self) -> None:
        """The replies kept in the last day (docs/mqtt.md keeps them that long),
        so a retry after a restart still finds its answer."""
        rows = await self.server.pool.fetch(
            "SELECT device_id, request_id FROM device_replies"
            " WHERE hall_id = $1 AND at > now() - make_interval(secs => $2) ORDER BY at",
            self.hall_id, KEPT_FOR_S)
        now = time.monotonic()
        self._asked.update(((row["device_id"], row["request_id"]), now) for row in rows)

    async def _load_staff_names(self) -> None:
        rows = await self.server.pool.fetch("SELECT id, name FROM staff")
        self._staff_names.update({row["id"]: row["name"] for row in rows})

    async def stop(self) -> None:
        self.server.signage.detach(self)
        if self.server.printer is self:
            self.server.printer = None
        for task in list(self._tasks):
            task.cancel()


PRINT_PROBLEMS: dict[PrintProblem, str] = {
    "offline": "取号打印机已离线，请到其他取号机取号",
    "paper_out": "打印纸已用完，请到其他取号机取号",
    "cover_open": "打印机舱盖未关闭，请到其他取号机取号",
}
"""What the kiosk tells the citizen when its printer cannot print (``printer_offline``)."""

PRINT_TIMEOUT = 10.0
"""Seconds a stand-alone printer has to answer a job before the kiosk is told it
failed: the broker notices a printer that lost power only after 1.5 keepalives
(45 s), far too late for a citizen standing at the kiosk."""
PRINT_CHECK_EVERY = 0.2
"""Seconds between looks at the printers of pending jobs: how soon a last will
reaches the kiosk."""
PRINT_FAILURES: dict[str, str] = {
    "printer_offline": "取号单未能打印（打印机离线），您的号码是 {number}，请留意叫号",
    "printer_failed": "取号单未能打印，您的号码是 {number}，请留意叫号",
    "timeout": "取号单未能打印，您的号码是 {number}，请留意叫号",
}


WINDOW_OPERATIONS: dict[type, str] = {
    m.Logout: "logout",
    m.CallNext: "call_next",
    m.Recall: "recall",
    m.StartService: "start",
    m.FinishService: "finish",
    m.Skip: "skip",
    m.Hold: "hold",
    m.Resume: "resume",
}
"""Call-terminal requests that are one engine operation with no arguments."""
