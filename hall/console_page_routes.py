"""What the manager's console needs besides the public views (Q7, Q14): each window's
services, groups and current calling strategy, each service's hours and daily quota,
and the rules a strategy can be built from."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from hall.auth import Role, require
from hall.routes import MANAGERS, api, server_of
from hall.views import service_views, staff_name, window_view
from queueing.hours import Hours
from queueing.strategies import RULES


class HoursOut(BaseModel):
    weekdays: list[int] = Field(description="0 Monday … 6 Sunday")
    intervals: list[tuple[str, str]] = Field(description='[["09:00", "12:00"], ...]')


class ConsoleWindow(BaseModel):
    id: str
    name: str
    area: str
    screen: str
    groups: list[str]
    state: str
    staff: str | None
    staff_name: str | None
    ticket: str | None
    pause_message: str | None
    anomalies: list[str]
    services: dict[str, int] = Field(description="Service id → weight")
    strategy: list[dict[str, Any]]


class ConsoleService(BaseModel):
    id: str
    name: str
    category: str
    prefix: str
    open: bool
    waiting: int
    open_windows: int
    hours: HoursOut
    daily_quota: int | None
    issued_today: int


class RuleOut(BaseModel):
    name: str
    params: dict[str, float] = Field(description="Parameter → default")
    exhaustive: bool = Field(description="Always picks when anyone waits: ends a chain")


class Viewer(BaseModel):
    id: str
    name: str
    role: str


class ConsoleOut(BaseModel):
    viewer: Viewer = Field(description="Who is asking")
    hall: str = Field(description="The hall's name")
    day: str | None = Field(description="The business day, YYYY-MM-DD")
    time_zone: str | None = Field(description="The hall's IANA time zone, for showing times")
    areas: list[dict[str, Any]]
    groups: list[str]
    windows: list[ConsoleWindow]
    services: list[ConsoleService]
    rules: list[RuleOut]


def hours_out(hours: Hours) -> HoursOut:
    return HoursOut(
        weekdays=sorted(hours.weekdays),
        intervals=[(f"{a:%H:%M}", f"{b:%H:%M}") for a, b in sorted(hours.intervals)],
    )


@api.get("/console", response=ConsoleOut, roles=MANAGERS, tags=("configuration",),
         summary="Windows with services, groups and strategies; services with hours "
                 "and quotas; the strategy rules (the manager's console)")
async def get_console(request: web.Request) -> ConsoleOut:
    principal = require(request, Role.MANAGER, Role.ADMIN)
    runtime = server_of(request).runtime
    engine = runtime.engine
    layout = engine.layout
    windows = []
    for live in engine.windows():
        view = window_view(runtime, live.id)
        windows.append(ConsoleWindow(
            id=view.id, name=view.name, area=view.area, screen=view.screen,
            groups=list(live.config.groups), state=view.state, staff=view.staff,
            staff_name=staff_name(runtime, view.staff), ticket=view.ticket,
            pause_message=view.pause_message, anomalies=list(view.anomalies),
            services=dict(live.services), strategy=live.strategy.spec.to_json(),
        ))
    services = [
        ConsoleService(
            id=s.id, name=s.name, category=s.category, prefix=s.prefix, open=s.open,
            waiting=s.waiting, open_windows=s.open_windows,
            hours=hours_out(layout.services[s.id].hours), daily_quota=s.daily_quota,
            issued_today=s.issued_today,
        )
        for s in service_views(runtime)
    ]
    groups = sorted({g for w in layout.windows.values() for g in w.groups})
    return ConsoleOut(
        viewer=Viewer(id=principal.id, name=principal.name, role=principal.role.value),
        hall=layout.name,
        day=engine.day.isoformat() if engine.day else None,
        time_zone=getattr(runtime.clock.now().tzinfo, "key", None),
        areas=[{"id": a.id, "name": a.name, "floor": a.floor} for a in layout.areas.values()],
        groups=groups,
        windows=windows,
        services=services,
        rules=[RuleOut(name=name, params=dict(cls.defaults), exhaustive=cls.exhaustive)
               for name, cls in RULES.items()],
    )
