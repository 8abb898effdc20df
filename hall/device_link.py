"""The hall's side of the device bus (docs/mqtt.md).

One MQTT connection for the hall. What devices send (birth, last will,
health, requests) is checked at the boundary and goes to the registry or,
for requests, through the same runtime as the REST API. Every request is
answered once: the answer is stored in the same transaction as the change
it made, so a retry after a lost answer gets the answer again and never a
second ticket or a second call. Requests from one device are handled in
order, different devices concurrently (so their changes share commits).
What screens show is published retained and whole, so a screen that comes
back resyncs from the broker alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import aiomqtt

from devices import messages as m
from devices.registry import DeviceChange, DeviceSpec
from devices.topics import Channel, DeviceKind, parse_topic, subscriptions, topic
from hall.checkin import CheckInRefused, check_in
from hall.committer import CommitFailed
from hall.device_store import DeviceStore, KeptReply
from hall.eventstore import StoredEvent
from hall.hall_events import DeviceChanged
from hall.pii import Identity
from hall.runtime import Unavailable
from hall.server import HallServer
from hall.views import service_open
from queueing import Event, Rejected, Source, WindowState
from queueing.events import TicketCalled, TicketRecalled

log = logging.getLogger(__name__)

RECENT_CALLS = 10
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


class TokenBucket:
    """Per-device rate limit: one device flooding the bus is cut off alone."""

    __slots__ = ("dropped", "tokens", "updated")

    def __init__(self) -> None:
        self.tokens = BURST
        self.updated = time.monotonic()
        self.dropped = 0

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


class DeviceLink:
    def __init__(self, server: HallServer, url: str) -> None:
        self.server = server
        self.url = url
        self.registry = server.devices
        self.hall_id = server.config.layout.hall_id
        self.store = DeviceStore(server.pool, self.hall_id)
        self.connected = asyncio.Event()
        self._outbox: asyncio.PriorityQueue[tuple[int, int, Outgoing]] = asyncio.PriorityQueue()
        self._posted = itertools.count()
        self._device_locks: dict[str, asyncio.Lock] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._board_refresh: asyncio.TimerHandle | None = None
        self._recent: deque[m.CallView] = deque(maxlen=RECENT_CALLS)
        self._staff_names: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        server.runtime.bus.subscribe(self._on_events)
        server.metrics.watch_devices(self.registry)

    # ------------------------------------------------------------ connection

    async def run(self) -> None:
        """Stay connected for as long as the hall runs; reconnect with backoff."""
        await self._load_staff_names()
        await self._load_approvals()
        delay = 0.5
        while True:
            try:
                await self._session()
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # being stopped: a dropped connection is no reason to retry
                log.warning("device bus connection lost (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _session(self) -> None:
        parts = urlsplit(self.url)
        async with aiomqtt.Client(
            hostname=parts.hostname or "127.0.0.1",
            port=parts.port or 1883,
            username=parts.username,
            password=parts.password,
            identifier=f"hall-server-{self.hall_id}",
            clean_session=True,
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            max_inflight_messages=MAX_IN_FLIGHT,
            logger=MQTT_LOG,
        ) as client:
            for pattern in subscriptions(self.hall_id):
                await client.subscribe(pattern, qos=1)
            self.connected.set()
            log.info("device bus connected at %s", parts.hostname)
            self._publish_all_displays()
            sender = asyncio.create_task(self._send(client))
            try:
                async for message in client.messages:
                    self._receive(message)
            finally:
                sender.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sender

    async def _send(self, client: aiomqtt.Client) -> None:
        """Many publishes in flight at once: waiting for each acknowledgement
        capped the hall at a few thousand messages a second. The client sends
        them in order, so a screen still gets its views in order."""
        in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

        async def publish(item: Outgoing) -> None:
            try:
                await client.publish(item.topic, item.payload, qos=1, retain=item.retain)
            except aiomqtt.MqttError as exc:
                log.warning("publish to %s failed: %s", item.topic, exc)
            finally:
                in_flight.release()

        while True:
            _, _, item = await self._outbox.get()
            await in_flight.acquire()
            self._spawn(publish(item))

    def _post(self, device_id: str, channel: Channel, payload: bytes) -> None:
        """Replies and commands go before views: someone waits on a reply, and a
        call's reply must not queue behind the forty boards it redraws. Within
        one priority, order is kept, so a screen gets its views in order."""
        outgoing = Outgoing(topic(self.hall_id, device_id, channel), payload, channel.retained)
        priority = 1 if channel is Channel.DISPLAY else 0
        self._outbox.put_nowait((priority, next(self._posted), outgoing))

    # --------------------------------------------------------------- inbound

    def _receive(self, message: aiomqtt.Message) -> None:
        parsed = parse_topic(str(message.topic))
        if parsed is None or parsed.hall_id != self.hall_id:
            log.warning("ignored a message on a topic outside the scheme: %s", message.topic)
            return
        raw = message.payload if isinstance(message.payload, bytes) else b""
        if parsed.channel is not Channel.STATUS and not self._within_rate(parsed.device_id):
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
        kept = await self.store.kept_reply(device_id, request.id)
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
        self._post(device_id, Channel.REPLY, m.encode(reply))

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
            case m.PrintDone() | m.PrintFailed() | m.CardRead():
                return m.Reply.success(request.id, {})
        if spec.window is None:
            raise m.MessageError(m.ErrorCode.NOT_ALLOWED, "this device is at no window")
        if isinstance(request, m.AskEvaluation):
            return self._ask_evaluation(spec.window, request)
        return await self._window_request(device_id, spec.window, request)

    async def _take_ticket(self, device_id: str, request: m.TakeTicket) -> m.Reply:
        status = self.registry.status(device_id)
        if status is not None and status.paper == "out":
            raise m.MessageError(
                m.ErrorCode.PRINTER_OFFLINE, "the printer is out of paper: use another kiosk")
        server = self.server
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
            raise m.MessageError(
                m.ErrorCode.NOT_ALLOWED,
                "priority tickets need the hall's priority password, which is not configured")
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
                citizen_ref=None if citizen is None else str(citizen), side=answer,
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
        engine = self.server.runtime.engine
        ticket = engine.ticket(request.ticket_id)
        staff = engine.window(spec.window).staff
        stored = await self.store.rate(
            ticket.id, spec.window, staff, request.rating, request.reasons, device_id,
            self.server.runtime.clock.now(),
        )
        if not stored:
            raise m.MessageError("already_rated", "this ticket was already rated at this window")
        return m.Reply.success(request.id, {"ticket": ticket.id, "rating": request.rating})

    # -------------------------------------------------------------- outbound

    def _print(self, kiosk_id: str, request_id: str, reply: m.Reply) -> None:
        assert reply.result is not None
        ticket = reply.result["ticket"]
        job = m.PrintJob(id=request_id, ticket=m.TicketPrint(
            number=ticket["number"], service_name=ticket["service_name"],
            people_ahead=ticket["people_ahead"], estimated_minutes=ticket["estimated_minutes"],
            direction=ticket["direction"], materials=ticket["materials"],
            notice=ticket["notice"], issued_at=datetime.fromisoformat(ticket["issued_at"]),
            qr=ticket["id"]))
        self._post(kiosk_id, Channel.CMD, m.encode(job))

    def _ask_evaluation(self, window: str, request: m.AskEvaluation) -> m.Reply:
        """Put the evaluation screen up for the ticket in hand (D10)."""
        engine = self.server.runtime.engine
        current = engine.current_ticket(window)
        if current is None:
            raise m.MessageError("no_current_ticket", "nobody is being served at this window")
        staff = engine.window(window).staff
        terminals = [
            status.id for status in self.registry.by_window(window)
            if status.kind is DeviceKind.EVALUATION_TERMINAL
        ]
        command = m.EvaluationRequest(
            id=request.id, ticket_id=current.id, number=current.number, window=window,
            window_name=engine.window(window).config.name,
            staff_name=self._staff_names.get(staff or "", staff or ""))
        for terminal in terminals:
            self._post(terminal, Channel.CMD, m.encode(command))
        return m.Reply.success(request.id, {"ticket_id": current.id, "terminals": terminals})

    def _on_events(self, events: Sequence[StoredEvent]) -> None:
        """Committed events change what screens show and what is announced."""
        screens: set[str] = set()
        boards = False
        called = False
        engine = self.server.runtime.engine
        for stored in events:
            event = stored.event
            window_id = getattr(event, "window_id", None)
            if window_id is not None and window_id in engine.layout.windows:
                screens.add(engine.layout.windows[window_id].screen_id)
            if isinstance(event, TicketCalled | TicketRecalled):
                name = engine.layout.windows[event.window_id].name
                self._recent.appendleft(m.CallView(number=event.number, window_name=name))
                self._announce(event.number, name)
                called = True
            boards = boards or event.type.startswith("ticket.")
        for screen in screens:
            self._publish_screen(screen)
        if called:
            self._publish_boards()  # a call shows at once; the refresh below is then moot
        elif boards and self._board_refresh is None:
            self._board_refresh = asyncio.get_running_loop().call_later(
                BOARD_EVERY, self._publish_boards)

    def _announce(self, number: str, window_name: str) -> None:
        text = f"请{number}号到{window_name}办理"
        for status in self.registry.by_kind(DeviceKind.ANNOUNCER):
            announce = m.Announce(id=f"call-{number}-{status.id}", text=text)
            self._post(status.id, Channel.CMD, m.encode(announce))

    def _publish_all_displays(self) -> None:
        for screen in {w.screen_id for w in self.server.config.layout.windows.values()}:
            self._publish_screen(screen)
        self._publish_boards()

    def _republish_for(self, device_id: str) -> None:
        """Retained views already resync a screen; this refreshes the broker's copy."""
        spec = self._spec(device_id)
        if spec is None:
            return
        if spec.kind is DeviceKind.WINDOW_SCREEN and spec.screen:
            self._publish_screen(spec.screen)
        elif spec.kind in (DeviceKind.HALL_BOARD, DeviceKind.LED_STRIP):
            self._publish_boards()

    def _publish_screen(self, screen_id: str) -> None:
        engine = self.server.runtime.engine
        positions = []
        for window in engine.screen_windows(screen_id):
            current = engine.current_ticket(window.id)
            positions.append(m.PositionView(
                window=window.id, name=window.config.name,
                staff_name=self._staff_names.get(window.staff or "", window.staff or ""),
                state=engine.window_state(window.id).value,
                number=current.number if current else None,
                message=window.pause.message if window.pause else None))
        display = m.WindowDisplay(positions=positions, seq=self.server.runtime.committer.next_seq)
        payload = m.encode(display)
        for status in self.registry.by_screen(screen_id):
            self._post(status.id, Channel.DISPLAY, payload)

    def _publish_boards(self) -> None:
        if self._board_refresh is not None:
            self._board_refresh.cancel()
            self._board_refresh = None
        engine = self.server.runtime.engine
        calling = [
            m.CallView(number=t.number, window_name=engine.layout.windows[w.id].name)
            for w in engine.windows()
            if engine.window_state(w.id) is WindowState.CALLING
            and (t := engine.current_ticket(w.id)) is not None
        ]
        waiting = [
            m.WaitingView(service=s.id, name=s.name, waiting=engine.waiting_count(s.id))
            for s in engine.layout.services.values()
        ]
        display = m.BoardDisplay(calling=calling, recent=list(self._recent), waiting=waiting,
                                 seq=self.server.runtime.committer.next_seq)
        payload = m.encode(display)
        for kind in (DeviceKind.HALL_BOARD, DeviceKind.LED_STRIP):
            for status in self.registry.by_kind(kind):
                self._post(status.id, Channel.DISPLAY, payload)

    # ---------------------------------------------------------------- views

    def _services(self) -> list[dict[str, Any]]:
        engine = self.server.runtime.engine
        now = self.server.runtime.clock.now()
        views = []
        for service in engine.layout.services.values():
            estimate = engine.service_estimate(service.id)
            views.append({
                "id": service.id, "name": service.name, "category": service.category,
                "open": service_open(service, estimate, now),
                "waiting": estimate.people_ahead,
                "estimated_minutes": None if estimate.minutes is None
                else round(estimate.minutes, 1),
            })
        return views

    def _ticket_view(self, ticket_id: str) -> dict[str, Any]:
        engine = self.server.runtime.engine
        ticket = engine.ticket(ticket_id)
        estimate = engine.ticket_estimate(ticket_id)
        text = self.server.config.tickets.get(ticket.requested)
        service = engine.layout.services[ticket.service]
        return {
            "id": ticket.id, "number": ticket.number, "service": ticket.service,
            "service_name": service.name, "people_ahead": estimate.people_ahead,
            "estimated_minutes": None if estimate.minutes is None
            else round(estimate.minutes, 1),
            "direction": text.direction if text else "",
            "materials": list(text.materials) if text else [],
            "notice": text.notice if text else "",
            "issued_at": ticket.issued_at.isoformat(),
        }

    def _window_view(self, window_id: str) -> dict[str, Any]:
        engine = self.server.runtime.engine
        window = engine.window(window_id)
        current = engine.current_ticket(window_id)
        return {
            "window": window_id, "state": engine.window_state(window_id).value,
            "staff": window.staff, "number": current.number if current else None,
            "ticket_id": current.id if current else None,
        }

    async def _load_approvals(self) -> None:
        """Devices a manager let in stay let in across restarts."""
        now = self.server.runtime.clock.now()
        for approval in await self.store.approvals():
            spec = DeviceSpec(approval.device_id, DeviceKind(approval.kind), approval.name,
                              approval.area, approval.window, approval.screen)
            if not self.registry.is_allowed(spec.id):
                self._changed(self.registry.approve(spec.id, spec, approval.approved_by, now))

    async def _load_staff_names(self) -> None:
        rows = await self.server.pool.fetch("SELECT id, name FROM staff")
        self._staff_names.update({row["id"]: row["name"] for row in rows})

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()


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
