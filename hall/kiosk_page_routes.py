"""What the kiosk page (hall/static/kiosk/) needs besides ``GET /services`` and
``POST /tickets``:

- ``GET /kiosk``: the kiosk the page's token names (when it is a registered kiosk)
  with its printer's problem, the other kiosks that can print now (where to send a
  citizen when this one is out of paper), and the priority groups the citizen picks
  from (names only: the passwords stay with the hall).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from hall.auth import Role, require
from hall.kiosk_print import is_kiosk, kiosks_that_print
from hall.routes import TICKET_TAKERS, api, server_of


class KioskSelf(BaseModel):
    id: str
    name: str
    area: str | None
    area_name: str | None
    print_problem: str | None = Field(
        description="offline, paper_out or cover_open: tickets are refused with "
                    "printer_offline until it is gone")


class KioskElsewhere(BaseModel):
    id: str
    name: str
    area: str | None
    area_name: str | None
    floor: int | None


class PriorityGroupOut(BaseModel):
    id: str
    name: str


class KioskPageOut(BaseModel):
    hall: str
    kiosk: KioskSelf | None = Field(description="None when the token is no registered kiosk")
    elsewhere: list[KioskElsewhere]
    priority_groups: list[PriorityGroupOut]
    appointments: bool = Field(description="Whether the hall books any service")


@api.get("/kiosk", response=KioskPageOut, roles=TICKET_TAKERS, tags=("tickets",),
         summary="The kiosk page's set-up: this kiosk and its printer, other kiosks, "
                 "priority groups")
async def kiosk_page(request: web.Request) -> KioskPageOut:
    principal = require(request, *(Role(r) for r in TICKET_TAKERS))
    server = server_of(request)
    layout = server.config.layout
    me = None
    if principal.role is Role.DEVICE and is_kiosk(server, principal.id):
        status = server.devices.status(principal.id)
        assert status is not None and status.spec is not None
        area = layout.areas.get(status.spec.area or "")
        me = KioskSelf(id=status.id, name=status.spec.name, area=status.spec.area,
                       area_name=area.name if area else None,
                       print_problem=server.devices.print_problem(status.id))
    others = kiosks_that_print(server, but=principal.id)
    return KioskPageOut(
        hall=layout.name, kiosk=me,
        elsewhere=[KioskElsewhere(id=k.id, name=k.name, area=k.area, area_name=k.area_name,
                                  floor=k.floor) for k in others],
        priority_groups=[PriorityGroupOut(id=g.id, name=g.name)
                         for g in server.config.priority_groups.values()],
        appointments=bool(server.config.appointments.services),
    )


__all__ = ["api"]
