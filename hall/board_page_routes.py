"""What the hall board and the status wall need besides ``GET /hall`` (D13, W2).

- ``GET /hall/calls``: today's calls and recalls, newest first, so a board that
  starts (or is reloaded) mid-morning shows the recent calls at once instead of an
  empty list until the next call; the event stream brings the later ones.
- ``GET /hall/scope``: the areas, windows and services of one area or floor, so a
  board or wall scoped with ``?area=`` or ``?floor=`` counts only the queues its
  windows serve (``/hall`` lists windows without their services).

Both are public like ``/hall``: numbers and window names are on every screen.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from hall.api.problems import Problem
from hall.routes import api, server_of
from queueing import Layout

CALL_NODES = ("called", "recalled")


class ScopeQuery(BaseModel):
    area: str | None = Field(None, description="One area's id")
    floor: int | None = Field(None, description="Every area on this floor")


class CallQuery(ScopeQuery):
    limit: int = Field(12, ge=1, le=200)


class CallOut(BaseModel):
    ticket_id: str
    number: str
    window: str
    window_name: str
    area: str
    service: str
    service_name: str
    at: datetime
    recall: bool


class ScopeOut(BaseModel):
    areas: list[str]
    windows: list[str]
    services: list[str]


def scoped_areas(layout: Layout, query: ScopeQuery) -> list[str]:
    if query.area is not None and query.area not in layout.areas:
        raise Problem(404, "unknown_area", f"No area {query.area!r}")
    areas = [a.id for a in layout.areas.values()
             if (query.area is None or a.id == query.area)
             and (query.floor is None or a.floor == query.floor)]
    if query.floor is not None and not any(a.floor == query.floor for a in layout.areas.values()):
        raise Problem(404, "unknown_floor", f"No floor {query.floor}")
    return areas


@api.get("/hall/calls", query=CallQuery, response=list[CallOut], tags=("hall",),
         summary="Today's calls and recalls, newest first (the hall board's recent list)")
async def list_calls(request: web.Request, query: CallQuery) -> list[CallOut]:
    runtime = server_of(request).runtime
    layout = runtime.config.layout
    areas = set(scoped_areas(layout, query))
    found: list[CallOut] = []
    for ticket in runtime.engine.tickets():
        for node in ticket.nodes:
            window = layout.windows.get(node.window or "")
            if node.kind not in CALL_NODES or window is None:
                continue
            if window.area not in areas:
                continue
            service = node.service or ticket.service
            found.append(CallOut(
                ticket_id=ticket.id, number=ticket.number, window=window.id,
                window_name=window.name, area=window.area, service=service,
                service_name=layout.services[service].name, at=node.at,
                recall=node.kind == "recalled"))
    found.sort(key=lambda call: call.at, reverse=True)
    return found[:query.limit]


@api.get("/hall/scope", query=ScopeQuery, response=ScopeOut, tags=("hall",),
         summary="The areas, windows and services of an area or a floor")
async def get_scope(request: web.Request, query: ScopeQuery) -> ScopeOut:
    layout = server_of(request).runtime.config.layout
    areas = scoped_areas(layout, query)
    windows = [w for w in layout.windows.values() if w.area in areas]
    services = {s for w in windows for s in w.services}
    return ScopeOut(areas=areas, windows=[w.id for w in windows],
                    services=[s for s in layout.services if s in services])


__all__ = ["api"]
