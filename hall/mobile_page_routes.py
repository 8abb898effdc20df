"""What the mobile page (M1) needs to know before it can offer booking: which
services take appointments, how, and the hall's day and time zone, so a phone
in another zone still shows slots in the hall's own time.

Public, like the slots themselves.
"""

from __future__ import annotations

from datetime import date

from aiohttp import web
from pydantic import BaseModel, Field

from hall.routes import api, server_of


class BookableService(BaseModel):
    service: str
    name: str
    category: str
    slot_minutes: int
    capacity: int
    days_ahead: int
    cutoff_minutes: float


class AppointmentServicesOut(BaseModel):
    timezone: str = Field(description="The hall's IANA time zone, e.g. Asia/Shanghai")
    today: date = Field(description="Today in the hall")
    remote_tickets_per_phone: int = Field(
        description="Remote tickets a phone number may take a day; 0: none")
    services: list[BookableService]


@api.get("/appointment-services", response=AppointmentServicesOut, tags=("appointments",),
         summary="Services that take appointments, with the hall's time zone and today (M1)")
async def appointment_services(request: web.Request) -> AppointmentServicesOut:
    server = server_of(request)
    desk = server.appointments
    layout = server.config.layout
    services = [
        BookableService(
            service=rule.service, name=layout.services[rule.service].name,
            category=layout.services[rule.service].category, slot_minutes=rule.slot_minutes,
            capacity=rule.capacity, days_ahead=rule.days_ahead,
            cutoff_minutes=rule.cutoff.total_seconds() / 60,
        )
        for rule in desk.config.services.values() if rule.service in layout.services
    ]
    return AppointmentServicesOut(
        timezone=str(desk.zone), today=server.runtime.clock.now().astimezone(desk.zone).date(),
        remote_tickets_per_phone=desk.remote.per_day, services=services)
