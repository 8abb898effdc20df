"""The event stream: every committed event, in order, to websocket clients.

``GET /api/v1/events?since=<seq>&area=<id>&type=<type or prefix.*>``

A client that reconnects with ``since`` gets every event after that sequence
number exactly once and in order: it is registered for live events before
its backlog is read from the database, and whatever the live feed brings that
the backlog already covered is skipped by sequence number. Each client has a
bounded queue; a client that falls that far behind is disconnected with a
reason that says where to resume, instead of slowing the hall down.

Events carry no personal data. A ``ticket.issued`` with a citizen gets a
``citizen`` member: in clear for the approval backend, which pre-fills its
application form with it (Q5), masked for staff, absent for everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from aiohttp import WSMsgType, web

from hall.auth import PRINCIPAL, Role
from hall.eventstore import StoredEvent
from hall.pii import Identity
from hall.runtime import HallRuntime
from queueing import Event, Layout

log = logging.getLogger(__name__)

TOO_SLOW = 4008
"""Close code for a client that fell behind (4000-4999: application codes)."""

BACKLOG_PAGE = 1000
ENCODED_KEPT = 4096
"""Recent events kept encoded; a subscriber further behind encodes its own."""


@dataclass(eq=False)
class Subscription:
    areas: frozenset[str]
    types: frozenset[str]
    prefixes: tuple[str, ...]
    queue: asyncio.Queue[StoredEvent]
    identity: Literal["clear", "masked", "none"] = "none"
    last_sent: int = 0
    overflowed: bool = False

    def wants(self, stored: StoredEvent, areas: frozenset[str] | None) -> bool:
        kind = stored.event.type
        filtered = bool(self.types or self.prefixes)
        if filtered and kind not in self.types and not kind.startswith(self.prefixes):
            return False
        return not self.areas or areas is None or bool(self.areas & areas)


class EventStream:
    def __init__(
        self,
        runtime: HallRuntime,
        *,
        max_queue: int = 2000,
        identities: Callable[[int], Awaitable[Identity | None]] | None = None,
    ) -> None:
        self.runtime = runtime
        self.max_queue = max_queue
        self.identities = identities
        self.subscriptions: set[Subscription] = set()
        self._sockets: set[web.WebSocketResponse] = set()
        self._encoded: dict[int, str] = {}
        self._index: AreaIndex | None = None
        runtime.bus.subscribe(self._deliver)

    def _area_index(self) -> AreaIndex:
        layout = self.runtime.config.layout
        if self._index is None or self._index.layout is not layout:
            self._index = AreaIndex(layout)
        return self._index

    def _deliver(self, events: Sequence[StoredEvent]) -> None:
        if not self.subscriptions:
            return
        index = self._area_index()
        for stored in events:
            areas = index.areas_of(stored.event)
            for subscription in self.subscriptions:
                if subscription.overflowed or not subscription.wants(stored, areas):
                    continue
                try:
                    subscription.queue.put_nowait(stored)
                except asyncio.QueueFull:
                    subscription.overflowed = True

    async def handle(self, request: web.Request) -> web.StreamResponse:
        subscription = self._subscription(request)
        since = _since(request)
        ws = web.WebSocketResponse(compress=False, heartbeat=30)
        await ws.prepare(request)
        self.subscriptions.add(subscription)
        self._sockets.add(ws)
        try:
            if since is not None:
                subscription.last_sent = since
                await self._send_backlog(ws, subscription)
            else:
                subscription.last_sent = self.runtime.committer.next_seq - 1
            await self._send_live(ws, subscription)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.subscriptions.discard(subscription)
            self._sockets.discard(ws)
            if not ws.closed:
                with contextlib.suppress(ConnectionResetError):
                    await ws.close()
        return ws

    async def close_all(self) -> None:
        """At shutdown: a websocket never ends by itself, and the server would wait for
        each (aiohttp's shutdown timeout) before stopping. 1001 says "going away"; every
        client resumes elsewhere, or here once back, with ``since``."""
        for ws in list(self._sockets):
            with contextlib.suppress(ConnectionResetError, RuntimeError):
                await ws.close(code=1001, message=b"server shutting down; reconnect with since")

    def _subscription(self, request: web.Request) -> Subscription:
        types = [t for t in request.query.getall("type", []) for t in t.split(",") if t]
        areas = [a for a in request.query.getall("area", []) for a in a.split(",") if a]
        unknown = [a for a in areas if a not in self.runtime.config.layout.areas]
        if unknown:
            raise web.HTTPBadRequest(text=f"unknown area {unknown[0]!r}")
        principal = request.get(PRINCIPAL)
        role = principal.role if principal is not None else None
        identity: Literal["clear", "masked", "none"] = (
            "clear" if role is Role.BACKEND
            else "masked" if role in (Role.STAFF, Role.MANAGER, Role.ADMIN)
            else "none"
        )
        return Subscription(
            areas=frozenset(areas),
            types=frozenset(t for t in types if not t.endswith("*")),
            prefixes=tuple(t[:-1] for t in types if t.endswith("*")),
            queue=asyncio.Queue(self.max_queue),
            identity=identity,
        )

    async def _send_backlog(self, ws: web.WebSocketResponse, subscription: Subscription) -> None:
        while True:
            page = await self.runtime.store.read_since(subscription.last_sent, BACKLOG_PAGE)
            index = self._area_index()
            for stored in page:
                if subscription.wants(stored, index.areas_of(stored.event)):
                    await ws.send_str(await self._render(stored, subscription))
                subscription.last_sent = stored.seq
            if len(page) < BACKLOG_PAGE:
                return

    async def _send_live(self, ws: web.WebSocketResponse, subscription: Subscription) -> None:
        incoming = asyncio.ensure_future(ws.receive())  # tells us when the client goes away
        try:
            while True:
                if subscription.overflowed and subscription.queue.empty():
                    await self._too_slow(ws, subscription)
                    return
                getter = asyncio.ensure_future(subscription.queue.get())
                await asyncio.wait({getter, incoming}, return_when=asyncio.FIRST_COMPLETED)
                if incoming.done():
                    if incoming.result().type in _GONE:
                        getter.cancel()
                        return
                    incoming = asyncio.ensure_future(ws.receive())  # clients have nothing to say
                if not getter.done():
                    getter.cancel()
                    continue
                stored = getter.result()
                if stored.seq <= subscription.last_sent:
                    continue
                await ws.send_str(await self._render(stored, subscription))
                subscription.last_sent = stored.seq
        finally:
            incoming.cancel()

    async def _render(self, stored: StoredEvent, subscription: Subscription) -> str:
        citizen = getattr(stored.event, "citizen_ref", None)
        if subscription.identity == "none" or not citizen or self.identities is None:
            return self._plain(stored)
        wire = stored.to_wire()
        identity = await self.identities(int(citizen))
        if identity is not None:
            shown = identity if subscription.identity == "clear" else identity.masked()
            wire["citizen"] = asdict(shown)
        return json.dumps(wire, ensure_ascii=False)

    def _plain(self, stored: StoredEvent) -> str:
        """One encoding per event, shared by every subscriber: with hundreds of
        screens connected, encoding per subscriber cost more than the rest."""
        text = self._encoded.get(stored.seq)
        if text is None:
            text = json.dumps(stored.to_wire(), ensure_ascii=False)
            self._encoded[stored.seq] = text
            if len(self._encoded) > ENCODED_KEPT:
                del self._encoded[next(iter(self._encoded))]
        return text

    async def _too_slow(self, ws: web.WebSocketResponse, subscription: Subscription) -> None:
        reason = f"too slow; reconnect with since={subscription.last_sent}"
        log.warning("event client disconnected: %s", reason)
        await ws.close(code=TOO_SLOW, message=reason.encode())


def _since(request: web.Request) -> int | None:
    raw = request.query.get("since")
    if raw is None:
        return None
    if not raw.isdigit():
        raise web.HTTPBadRequest(text="since must be a sequence number (an integer ≥ 0)")
    return int(raw)




class AreaIndex:
    """Which areas an event concerns, for the area filter. Built once per layout:
    otherwise each event naming only a service walked every window of the hall, on
    the path that answers devices."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        served: dict[str, set[str]] = {}
        for window in layout.windows.values():
            for service in window.services:
                served.setdefault(service, set()).add(window.area)
        self._areas_of_service = {s: frozenset(areas) for s, areas in served.items()}

    def areas_of(self, event: Event) -> frozenset[str] | None:
        """None means the whole hall (a new day, a strategy for all windows)."""
        layout = self.layout
        data: dict[str, Any] = {name: getattr(event, name, None) for name in _AREA_FIELDS}
        window_ids = [w for w in (data["window_id"], data["to_window_id"]) if w]
        window_ids += list(data["window_ids"] or ())
        if window_ids:
            return frozenset(layout.windows[w].area for w in window_ids if w in layout.windows)
        services = data["services"] or ((data["service_id"],) if data["service_id"] else ())
        if services:
            empty: frozenset[str] = frozenset()
            return empty.union(*(self._areas_of_service.get(s, empty) for s in services))
        return None


_AREA_FIELDS = ("window_id", "to_window_id", "window_ids", "services", "service_id")
_GONE = frozenset({WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR})
