"""What the hall's display clients are sent: window screens, hall boards and
LED strips (docs/mqtt.md, "Window screen, hall board, LED strip"; D8).

Why it is shaped like this (measured with bench/devices.py): redrawing every
board of a 1,000-window hall on every call, each board showing every calling
window and every service, cost the call's reply and screen tens of
milliseconds and could outgrow the protocol's message limit. So:

* A board shows a scope: the floor of its area, or the whole hall when it has
  no area. A call redraws the boards of its floor and the hall-wide ones only.
* Lists are bounded: the latest ``MAX_CALLING`` calling windows, the last
  ``RECENT_CALLS`` calls; a view still over ``MAX_MESSAGE_BYTES`` (a hall with
  hundreds of services on one board) drops services from its end, logged.
* A view is built and encoded once and sent to every device that shows it;
  a view equal to the one last sent is not sent again.
* Which devices show what is indexed, not looked up in the registry per view.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from devices import messages as m
from devices.registry import DeviceStatus
from devices.topics import DeviceKind
from hall.runtime import HallRuntime
from queueing import Event, WindowState
from queueing.events import TicketCalled, TicketRecalled

log = logging.getLogger(__name__)

MAX_CALLING = 20
"""Calling windows a board lists, the latest called first."""
RECENT_CALLS = 10
Scope = int | None
"""A floor, or None for the whole hall."""
HALL: Scope = None


@dataclass(frozen=True, slots=True)
class Audience:
    """Which allowed devices show which view."""

    screens: Mapping[str, tuple[str, ...]]
    """Screen id -> window screens showing it."""
    boards: Mapping[Scope, tuple[str, ...]]
    """Scope -> hall boards and LED strips showing it."""
    announcers: tuple[str, ...]
    device_ids: frozenset[str]
    screen_of: Mapping[str, str]
    """Device -> the screen it shows."""
    scope_of: Mapping[str, Scope]
    """Device -> the board scope it shows."""


def audience_of(statuses: Iterable[DeviceStatus], scope_of_area: Mapping[str, int],
                screen_of_window: Mapping[str, str] | None = None) -> Audience:
    """An LED strip above a window (one with a ``window`` or a ``screen``) shows
    that window's screen; one in the hall shows a board (docs/mqtt.md)."""
    screens: dict[str, list[str]] = {}
    boards: dict[Scope, list[str]] = {}
    announcers: list[str] = []
    ids: set[str] = set()
    for status in statuses:
        spec = status.spec
        if spec is None:
            continue
        screen = spec.screen
        if screen is None and spec.window is not None and spec.kind is DeviceKind.LED_STRIP:
            screen = (screen_of_window or {}).get(spec.window)
        if spec.kind in (DeviceKind.WINDOW_SCREEN, DeviceKind.LED_STRIP) and screen:
            screens.setdefault(screen, []).append(spec.id)
        elif spec.kind in (DeviceKind.HALL_BOARD, DeviceKind.LED_STRIP):
            scope = None if spec.area is None else scope_of_area.get(spec.area)
            boards.setdefault(scope, []).append(spec.id)
        elif spec.kind is DeviceKind.ANNOUNCER:
            announcers.append(spec.id)
        else:
            continue
        ids.add(spec.id)
    return Audience({k: tuple(v) for k, v in screens.items()},
                    {k: tuple(v) for k, v in boards.items()}, tuple(announcers),
                    frozenset(ids),
                    {d: screen for screen, devices in screens.items() for d in devices},
                    {d: scope for scope, devices in boards.items() for d in devices})


@dataclass(slots=True)
class _Sent:
    screens: dict[str, list[m.PositionView]] = field(default_factory=dict)
    boards: dict[Scope, tuple[list[m.CallView], list[m.CallView], list[m.WaitingView]]] = (
        field(default_factory=dict))


class Displays:
    """Builds the screen and board views from the engine, keeps the calls in
    the order they were made, and remembers what was last sent."""

    def __init__(self, runtime: HallRuntime, staff_names: Mapping[str, str],
                 devices: Callable[[], Iterable[DeviceStatus]],
                 spec_version: Callable[[], int],
                 limit: int = m.MAX_MESSAGE_BYTES) -> None:
        self.runtime = runtime
        self.staff_names = staff_names
        self._devices = devices
        self._spec_version = spec_version
        """Changes when a device is added or approved (``Registry.spec_version``)."""
        self.limit = limit
        layout = runtime.engine.layout
        self.scope_of_area: dict[str, int] = {a.id: a.floor for a in layout.areas.values()}
        self._scope_of_window: dict[str, Scope] = {
            w.id: self.scope_of_area.get(w.area) for w in layout.windows.values()}
        self._screen_of_window = {w.id: w.screen_id for w in layout.windows.values()}
        self._screen_windows: dict[str, list[str]] = {}
        for w in layout.windows.values():
            self._screen_windows.setdefault(w.screen_id, []).append(w.id)
        served: dict[Scope, set[str]] = {}
        for w in layout.windows.values():
            served.setdefault(self._scope_of_window[w.id], set()).update(w.services)
        self._services: dict[Scope, tuple[str, ...]] = {
            scope: tuple(s for s in layout.services if s in ids) for scope, ids in served.items()}
        self._services[HALL] = tuple(layout.services)
        self._recent: dict[Scope, deque[m.CallView]] = {}
        self._calling: dict[str, m.CallView] = {}
        """Windows calling now, in the order they were called (oldest first)."""
        self._sent = _Sent()
        self._trimmed: dict[Scope, int] = {}
        self._audience: Audience | None = None
        self._audience_version = -1
        self.resync()

    # -------------------------------------------------------------- state

    def resync(self) -> None:
        """Take the calling windows from the engine (at start, after a
        reconnect) and forget what was sent, so everything is sent again."""
        engine = self.runtime.engine
        self._calling = {}
        for window in engine.windows():
            self._track(window.id, called=False)
        self._sent = _Sent()
        self._audience = None

    def resend_screen(self, screen_id: str) -> None:
        """The next view of this screen is sent even if it did not change."""
        self._sent.screens.pop(screen_id, None)

    def resend_board(self, scope: Scope) -> None:
        self._sent.boards.pop(scope, None)

    def scope_of(self, area: str | None) -> Scope:
        """A board's scope: its area's floor, or the whole hall without an area."""
        return None if area is None else self.scope_of_area.get(area)

    def scopes_of_window(self, window_id: str) -> tuple[Scope, ...]:
        scope = self._scope_of_window.get(window_id)
        return (HALL,) if scope is None else (scope, HALL)

    def note(self, events: Sequence[Event]) -> tuple[set[str], set[Scope], list[m.CallView]]:
        """What committed events change: the screens to redraw, the board
        scopes to redraw at once (a call), and the calls to announce."""
        screens: set[str] = set()
        scopes: set[Scope] = set()
        calls: list[m.CallView] = []
        layout = self.runtime.engine.layout
        for event in events:
            window_id = getattr(event, "window_id", None)
            if window_id is None or window_id not in layout.windows:
                continue
            screens.add(layout.windows[window_id].screen_id)
            called = isinstance(event, TicketCalled | TicketRecalled)
            was_calling = window_id in self._calling
            self._track(window_id, called=called)
            if called:
                assert isinstance(event, TicketCalled | TicketRecalled)
                call = m.CallView(number=event.number, window_name=layout.windows[window_id].name)
                calls.append(call)
                for scope in self.scopes_of_window(window_id):
                    self._recent.setdefault(scope, deque(maxlen=RECENT_CALLS)).appendleft(call)
            if called or was_calling != (window_id in self._calling):
                scopes.update(self.scopes_of_window(window_id))
        return screens, scopes, calls

    def _track(self, window_id: str, *, called: bool) -> None:
        engine = self.runtime.engine
        current = engine.current_ticket(window_id)
        if engine.window_state(window_id) is not WindowState.CALLING or current is None:
            self._calling.pop(window_id, None)
            return
        view = m.CallView(number=current.number,
                          window_name=engine.layout.windows[window_id].name)
        if called:
            self._calling.pop(window_id, None)
        self._calling[window_id] = view

    # -------------------------------------------------------------- devices

    def audience(self) -> Audience:
        """Rebuilt only when the devices' specs changed: walking every device of a
        large hall on each draw (it was every second) stalled every answer behind it."""
        version = self._spec_version()
        if self._audience is None or version != self._audience_version:
            self._audience = audience_of(self._devices(), self.scope_of_area,
                                         self._screen_of_window)
            self._audience_version = version
        return self._audience

    # -------------------------------------------------------------- views

    def screen(self, screen_id: str, seq: int, *, force: bool = False) -> bytes | None:
        """The screen's view, or None when it is what was last sent."""
        engine = self.runtime.engine
        positions = []
        for window_id in self._screen_windows.get(screen_id, ()):
            window = engine.window(window_id)
            current = engine.current_ticket(window_id)
            positions.append(m.PositionView(
                window=window_id, name=window.config.name,
                staff_name=self.staff_names.get(window.staff or "", window.staff or None),
                state=engine.window_state(window_id).value,
                number=current.number if current else None,
                message=window.pause.message if window.pause else None))
        if not positions:
            return None
        if not force and self._sent.screens.get(screen_id) == positions:
            return None
        self._sent.screens[screen_id] = positions
        return m.encode(m.WindowDisplay(positions=positions, seq=seq))

    def board(self, scope: Scope, seq: int, *, force: bool = False) -> bytes | None:
        """The board view of one scope, or None when it is what was last sent."""
        engine = self.runtime.engine
        calling = [view for window_id, view in reversed(self._calling.items())
                   if scope is HALL or self._scope_of_window.get(window_id) == scope]
        calling = calling[:MAX_CALLING]
        recent = list(self._recent.get(scope, ()))
        layout = engine.layout
        waiting = [
            m.WaitingView(service=s, name=layout.services[s].name,
                          waiting=engine.waiting_count(s))
            for s in self._services.get(scope, ())
        ]
        content = (calling, recent, waiting)
        if not force and self._sent.boards.get(scope) == content:
            return None
        self._sent.boards[scope] = content
        return self._fit(scope, calling, recent, waiting, seq)

    def _fit(self, scope: Scope, calling: list[m.CallView], recent: list[m.CallView],
             waiting: list[m.WaitingView], seq: int) -> bytes:
        """Under the protocol's limit, dropping services from the end, then
        recent calls, then calling windows; logged whenever the cut changes."""
        total = len(waiting)
        while True:
            payload = m.encode(m.BoardDisplay(calling=calling, recent=recent, waiting=waiting,
                                              seq=seq))
            excess = len(payload) - self.limit
            if excess <= 0:
                break
            if waiting:
                each = max(1, len(m.encode(waiting[-1])) + 1)
                waiting = waiting[: max(0, len(waiting) - max(1, -(-excess // each)))]
            elif recent:
                recent = recent[:-1]
            elif calling:
                calling = calling[:-1]
            else:
                break
        shown = len(waiting)
        if self._trimmed.get(scope, total) != shown:
            where = "the whole hall" if scope is HALL else f"floor {scope}"
            if shown < total:
                log.warning("the board view for %s would be over the %d-byte message limit: "
                            "it shows %d of %d services", where, self.limit, shown, total)
            else:
                log.info("the board view for %s fits again: all %d services", where, total)
        self._trimmed[scope] = shown
        return payload
