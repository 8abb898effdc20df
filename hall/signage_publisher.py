"""Signage on the device bus (D8): each window screen and hall board gets what its
schedule plays, as a retained ``display.signage`` message (docs/mqtt.md, "Signage").

Nothing polls. What a screen shows changes only when a manager edits the content,
when a schedule's run or a notice begins or ends, or when the screen comes (back)
online, so the hub publishes then: after an edit (``reload``), on one timer set for
the next foreseen change (``signage.schedule`` knows when that is), on the device
link's (re)connection and on a screen's birth. A screen is sent a message only when
what it shows differs from what it was last sent.

A hall with no signage content at all sends nothing: its screens keep their live
views alone, as before signage existed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec

from devices import messages as m
from devices.registry import DeviceStatus, Registry
from hall.eventstore import StoredEvent
from hall.hall_events import DeviceChanged
from hall.runtime import HallRuntime
from hall.signage_store import SignageStore
from signage.model import SCREEN_KINDS, Content, Screen
from signage.schedule import Showing, next_change, plan

log = logging.getLogger(__name__)

LOOK_AGAIN = timedelta(hours=6)
"""The longest the hub sleeps with nothing foreseen (a date range starting next
month): it looks again, which costs nothing when nothing changed."""
MIN_WAIT_S = 0.05
"""Real seconds at least between timer runs, should the clock lag the timer."""


class DisplaySink(Protocol):
    """The device link, as the hub needs it."""

    registry: Registry

    def publish_display(self, device_id: str, payload: bytes) -> None: ...

    def on_connected(self, hook: Callable[[], None]) -> None: ...


class SignageHub:
    def __init__(self, store: SignageStore, runtime: HallRuntime) -> None:
        self.store = store
        self.runtime = runtime
        self.zone = runtime.config.timezone
        layout = runtime.config.layout
        self._floor_of_area = {area.id: area.floor for area in layout.areas.values()}
        self._content: Content | None = None
        self._sink: DisplaySink | None = None
        self._sent: dict[str, m.SignageDisplay] = {}
        """Device -> what it was last sent, with ``seq`` 0."""
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._returning: set[str] = set()
        """Screens back online whose signage a task started for them is yet to send."""
        self.published = 0
        """Messages sent since start, for tests and metrics."""
        runtime.bus.subscribe(self._on_events)

    # ------------------------------------------------------------ wiring

    def attach(self, sink: DisplaySink) -> None:
        self._sink = sink
        sink.on_connected(self._connected)

    def detach(self, sink: DisplaySink) -> None:
        if self._sink is not sink:
            return
        self._sink = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        self._returning.clear()

    def _connected(self) -> None:
        """The broker may have lost its retained messages: everything again."""
        self._sent.clear()
        self._spawn(self.publish())

    def _on_events(self, events: Sequence[StoredEvent]) -> None:
        """A screen that came online or was let in gets its signage again."""
        due = {stored.event.device_id for stored in events
               if isinstance(stored.event, DeviceChanged)
               and stored.event.change in ("online", "approved")
               and stored.event.kind in SCREEN_KINDS}
        if due and self._sink is not None:
            for device_id in due:
                self._sent.pop(device_id, None)
            waiting = bool(self._returning)
            self._returning |= due
            if not waiting:
                self._spawn(self._publish_returning())

    async def _publish_returning(self) -> None:
        """The screens that came back since this task was started, in one go, and only
        those: after a broker restart thousands come back in bursts, and planning every
        screen of the hall for each burst held the loop for milliseconds at a time
        (2 ms a burst with 1,000 devices, bench/devices.py's start-up)."""
        async with self._lock:
            due, self._returning = self._returning, set()
            await self._publish(force=due, only=due)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("publishing signage failed", exc_info=task.exception())

    # ------------------------------------------------------------ content

    async def content(self) -> Content:
        if self._content is None:
            self._content = await self.store.load(self.runtime.clock.now())
        return self._content

    async def reload(self) -> None:
        """After a manager's edit: read the content again and send what changed."""
        self._content = await self.store.load(self.runtime.clock.now())
        if self._sink is not None:
            await self.publish()

    def screens(self, statuses: Iterable[DeviceStatus]) -> list[Screen]:
        """The allowed devices that draw signage (window screens and hall boards)."""
        found = []
        for status in statuses:
            spec = status.spec
            if spec is None or spec.kind.value not in SCREEN_KINDS:
                continue
            floor = self._floor_of_area.get(spec.area) if spec.area else None
            found.append(Screen(spec.id, spec.kind.value, spec.area, floor))
        return found

    def view(self, showing: Showing, seq: int = 0) -> m.SignageDisplay:
        """The message for a screen that shows ``showing``."""
        layout = showing.layout
        return m.SignageDisplay(
            layout=None if layout is None else layout.id,
            name="" if layout is None else layout.name,
            regions=[
                m.SignageRegionView(
                    id=region.id, kind=region.kind.value, x=region.x, y=region.y, w=region.w,
                    h=region.h,
                    items=[m.SignageItemView(
                        id=item.id, kind=item.kind.value, title=item.title, text=item.text,
                        url=item.url, seconds=item.seconds, services=list(item.services))
                        for item in items])
                for region, items in showing.regions],
            notices=[m.NoticeView(id=n.id, text=n.text, level=n.level,
                                  expires_at=n.expires_at.astimezone(self.zone))
                     for n in showing.notices],
            schedule=None if showing.schedule is None else showing.schedule.id,
            until=None if showing.until is None else showing.until.astimezone(self.zone),
            seq=seq,
        )

    # ------------------------------------------------------------ publishing

    async def publish(self, force: Iterable[str] = ()) -> None:
        """Send each screen what it shows now when that differs from what it was last
        sent (always to the screens in ``force``), and set the timer for the next change."""
        async with self._lock:
            await self._publish(force=set(force))

    async def _publish(self, force: set[str], only: set[str] | None = None) -> None:
        """``only``: these screens and no others, leaving the timer as it is (it was
        set for every screen)."""
        content = await self.content()
        sink = self._sink
        if sink is None:
            return
        now = self.runtime.clock.now()
        screens = self.screens(sink.registry.all() if only is None else
                               (s for s in map(sink.registry.status, only) if s is not None))
        shown = plan(content, screens, now, self.zone)
        for device_id, showing in shown.items():
            view = self.view(showing)
            last = self._sent.get(device_id)
            if last is None and content.empty:
                continue  # a hall without signage leaves its screens alone
            if last == view and device_id not in force:
                continue
            self._send(sink, device_id, view)
        if only is None:
            self._arm(next_change(shown.values()), now)

    def _send(self, sink: DisplaySink, device_id: str, view: m.SignageDisplay) -> None:
        payload = m.encode(msgspec.structs.replace(view, seq=self._next_seq()))
        payload = self._fit(device_id, view, payload)
        sink.publish_display(device_id, payload)
        self._sent[device_id] = view
        self.published += 1

    def _fit(self, device_id: str, view: m.SignageDisplay, payload: bytes) -> bytes:
        """Under the protocol's limit: long playlists lose items from their ends."""
        while len(payload) > m.MAX_MESSAGE_BYTES:
            longest = max(range(len(view.regions)), key=lambda i: len(view.regions[i].items),
                          default=None)
            if longest is None or not view.regions[longest].items:
                break
            regions = list(view.regions)
            region = regions[longest]
            regions[longest] = msgspec.structs.replace(region, items=region.items[:-1])
            view = msgspec.structs.replace(view, regions=regions)
            payload = m.encode(msgspec.structs.replace(view, seq=self._seq))
            log.warning("signage for %s is over the %d-byte message limit: region %s "
                        "plays %d items", device_id, m.MAX_MESSAGE_BYTES, region.id,
                        len(region.items) - 1)
        return payload

    def _next_seq(self) -> int:
        """Milliseconds since the epoch, strictly growing: it grows across restarts too."""
        self._seq = max(self._seq + 1, int(time.time() * 1000))
        return self._seq

    def _arm(self, due: datetime | None, now: datetime) -> None:
        if self._timer is not None:
            self._timer.cancel()
        wait = LOOK_AGAIN if due is None else min(due - now, LOOK_AGAIN)
        real = max(self.runtime.clock.seconds(wait.total_seconds()), MIN_WAIT_S)
        self._timer = asyncio.get_running_loop().call_later(real, self._due)

    def _due(self) -> None:
        self._timer = None
        self._spawn(self.publish())
