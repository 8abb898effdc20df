"""The hall as screens and clients see it: plain values, no personal data.

The engine's own snapshot is complete and internal; this is the public shape,
kept separate so the engine can change inside without breaking clients. The
REST API (hall/routes.py) and the device bus (hall/device_link.py) both
answer from the views here, each in its own wire names (docs/api and
docs/mqtt.md), so a ticket or a window never reads differently on the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hall.runtime import HallRuntime
from queueing import Estimate, Service, Status


@dataclass(frozen=True, slots=True)
class TextView:
    """What the ticket says besides its number (Q3)."""

    direction: str
    materials: tuple[str, ...]
    notice: str


@dataclass(frozen=True, slots=True)
class TicketView:
    id: str
    number: str
    requested: str
    service: str
    service_name: str
    services: tuple[str, ...]
    source: str
    status: str
    issued_at: datetime
    window: str | None
    people_ahead: int | None
    """None unless the ticket is waiting."""
    estimated_minutes: float | None
    text: TextView | None


@dataclass(frozen=True, slots=True)
class WindowView:
    id: str
    name: str
    area: str
    screen: str
    state: str
    staff: str | None
    ticket: str | None
    """The number of the ticket at the window."""
    ticket_id: str | None
    pause_message: str | None
    anomalies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServiceView:
    id: str
    name: str
    category: str
    prefix: str
    open: bool
    waiting: int
    open_windows: int
    estimated_minutes: float | None
    daily_quota: int | None
    issued_today: int
    text: TextView | None


def ticket_view(runtime: HallRuntime, ticket_id: str) -> TicketView:
    engine = runtime.engine
    ticket = engine.ticket(ticket_id)
    ahead: int | None = None
    minutes: float | None = None
    if ticket.status is Status.WAITING:
        estimate = engine.ticket_estimate(ticket.id)
        ahead, minutes = estimate.people_ahead, estimate.minutes
    return TicketView(
        id=ticket.id,
        number=ticket.number,
        requested=ticket.requested,
        service=ticket.service,
        service_name=engine.layout.services[ticket.service].name,
        services=tuple(ticket.services),
        source=ticket.source.value,
        status=ticket.status.value,
        issued_at=ticket.issued_at,
        window=ticket.window,
        people_ahead=ahead,
        estimated_minutes=_rounded(minutes),
        text=_text(runtime, ticket.requested),
    )


def window_view(runtime: HallRuntime, window_id: str) -> WindowView:
    engine = runtime.engine
    window = engine.window(window_id)
    current = engine.current_ticket(window_id)
    return WindowView(
        id=window.id,
        name=window.config.name,
        area=window.config.area,
        screen=window.config.screen_id,
        state=engine.window_state(window_id).value,
        staff=window.staff,
        ticket=current.number if current else None,
        ticket_id=current.id if current else None,
        pause_message=window.pause.message if window.pause else None,
        anomalies=tuple(kind.value for kind in window.anomalies),
    )


def staff_name(runtime: HallRuntime, staff_id: str | None) -> str | None:
    """What a window screen shows: the name from the configuration; the id for staff
    known only through single sign-on."""
    if staff_id is None:
        return None
    names = {entry.id: entry.name for entry in runtime.config.auth.staff}
    return names.get(staff_id, staff_id)


def service_views(runtime: HallRuntime) -> list[ServiceView]:
    engine = runtime.engine
    now = runtime.clock.now()
    views = []
    for service in engine.layout.services.values():
        estimate = engine.service_estimate(service.id)
        views.append(ServiceView(
            id=service.id,
            name=service.name,
            category=service.category,
            prefix=service.prefix,
            open=service_open(service, estimate, now),
            waiting=estimate.people_ahead,
            open_windows=estimate.open_windows,
            estimated_minutes=_rounded(estimate.minutes),
            daily_quota=service.daily_quota,
            issued_today=engine.issued_today(service.id),
            text=_text(runtime, service.id),
        ))
    return views


def hall_view(runtime: HallRuntime) -> dict[str, Any]:
    engine = runtime.engine
    layout = engine.layout
    now = runtime.clock.now()
    services = [
        {
            "id": s.id,
            "name": s.name,
            "category": s.category,
            "prefix": s.prefix,
            "open": s.open,
            "waiting": s.waiting,
            "open_windows": s.open_windows,
            "estimated_minutes": s.estimated_minutes,
        }
        for s in service_views(runtime)
    ]
    windows = [
        {
            "id": w.id,
            "name": w.name,
            "area": w.area,
            "screen": w.screen,
            "state": w.state,
            "staff": w.staff,
            "staff_name": staff_name(runtime, w.staff),
            "ticket": w.ticket,
            "pause_message": w.pause_message,
            "anomalies": list(w.anomalies),
        }
        for w in (window_view(runtime, window.id) for window in engine.windows())
    ]
    return {
        "hall": {"id": layout.hall_id, "name": layout.name},
        "day": engine.day.isoformat() if engine.day else None,
        "now": now.isoformat(timespec="seconds"),
        "areas": [
            {"id": a.id, "name": a.name, "floor": a.floor} for a in layout.areas.values()
        ],
        "services": services,
        "windows": windows,
    }


def service_open(service: Service, estimate: Estimate, now: datetime) -> bool:
    """What kiosks, screens and the API call "open": within its hours and with
    a window taking tickets (Q4). A used-up quota is refused at the kiosk."""
    return service.hours.is_open(now) and estimate.open_windows > 0


def _text(runtime: HallRuntime, requested: str) -> TextView | None:
    text = runtime.config.tickets.get(requested)
    if text is None:
        return None
    return TextView(text.direction, tuple(text.materials), text.notice)


def _rounded(minutes: float | None) -> float | None:
    return None if minutes is None else round(minutes, 1)
