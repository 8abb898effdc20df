"""The hall as screens and clients see it: plain JSON, no personal data.

The engine's own snapshot is complete and internal; this is the public shape,
kept separate so the engine can change inside without breaking clients.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from hall.runtime import HallRuntime
from queueing import Estimate, Service


def hall_view(runtime: HallRuntime) -> dict[str, Any]:
    engine = runtime.engine
    layout = engine.layout
    now = runtime.clock.now()
    services = []
    for service in layout.services.values():
        estimate = engine.service_estimate(service.id)
        services.append(
            {
                "id": service.id,
                "name": service.name,
                "category": service.category,
                "prefix": service.prefix,
                "open": service_open(service, estimate, now),
                "waiting": estimate.people_ahead,
                "open_windows": estimate.open_windows,
                "estimated_minutes": _rounded(estimate.minutes),
            }
        )
    windows = []
    for window in engine.windows():
        current = engine.current_ticket(window.id)
        windows.append(
            {
                "id": window.id,
                "name": window.config.name,
                "area": window.config.area,
                "screen": window.config.screen_id,
                "state": engine.window_state(window.id).value,
                "staff": window.staff,
                "ticket": current.number if current else None,
                "pause_message": window.pause.message if window.pause else None,
                "anomalies": [kind.value for kind in window.anomalies],
            }
        )
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


def _rounded(minutes: float | None) -> float | None:
    return None if minutes is None else round(minutes, 1)
