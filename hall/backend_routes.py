"""The approval backend's side of the API: it pushes its catalog (Q9),
bookings (Q1) and case progress; it reads tickets and, over the event stream,
the clear identity of ID-card and appointment tickets (Q5)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from hall.api.problems import Problem
from hall.auth import Role, require
from hall.backend import CatalogItem, Progress
from hall.pii import Identity
from hall.routes import IdentityIn, api, server_of

BACKEND = ("backend",)


class ItemIn(BaseModel):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    category: str = Field(min_length=1, max_length=100)
    department: str = Field("", max_length=100)
    materials: list[str] = Field(default_factory=list, max_length=50)
    guide_url: str | None = Field(None, max_length=500)


class CatalogIn(BaseModel):
    items: list[ItemIn] = Field(max_length=5000)


class CatalogSyncOut(BaseModel):
    items: int
    removed: int
    services_without_item: list[str]
    items_without_service: list[str]


class ItemOut(ItemIn):
    service: str | None = Field(description="The hall service this item is taken at")


class AppointmentIn(BaseModel):
    code: str = Field(min_length=4, max_length=32)
    service: str
    slot_start: datetime
    slot_end: datetime
    citizen: IdentityIn | None = None

    @model_validator(mode="after")
    def _slot_in_order(self) -> AppointmentIn:
        if self.slot_end <= self.slot_start:
            raise ValueError("slot_end must be after slot_start")
        if self.slot_start.tzinfo is None:
            raise ValueError("slot times need a time zone offset")
        return self


class AppointmentsIn(BaseModel):
    appointments: list[AppointmentIn] = Field(max_length=2000)


class AppointmentOut(BaseModel):
    code: str
    service: str
    slot_start: datetime
    slot_end: datetime
    status: str
    ticket_id: str | None


class ProgressIn(BaseModel):
    ticket_id: str | None = None
    status: str = Field(min_length=1, max_length=64)
    message: str = Field("", max_length=500)
    at: datetime | None = None


class ProgressOut(BaseModel):
    case_id: str
    ticket_id: str | None
    status: str
    message: str
    at: datetime


@api.put("/backend/catalog", body=CatalogIn, response=CatalogSyncOut, roles=BACKEND,
         summary="Replace the item catalog (Q9)", tags=("backend",))
async def put_catalog(request: web.Request, body: CatalogIn) -> CatalogSyncOut:
    principal = require(request, Role.BACKEND)
    server = server_of(request)
    codes = [item.code for item in body.items]
    if len(set(codes)) != len(codes):
        raise Problem(422, "duplicate_item", "Item codes must be unique in one catalog")
    items = [
        CatalogItem(i.code, i.name, i.category, i.department, tuple(i.materials), i.guide_url)
        for i in body.items
    ]
    result = await server.backend.sync_catalog(items, server.config.layout.services)
    await server.audit.record(principal, "catalog.sync", None,
                              {"items": result.items, "removed": result.removed})
    return CatalogSyncOut(
        items=result.items,
        removed=result.removed,
        services_without_item=list(result.services_without_item),
        items_without_service=list(result.items_without_service),
    )


@api.get("/catalog", response=list[ItemOut], tags=("catalog",),
         summary="The backend's items, linked to the hall's services")
async def get_catalog(request: web.Request) -> list[ItemOut]:
    server = server_of(request)
    services = server.config.layout.services
    return [
        ItemOut(code=i.code, name=i.name, category=i.category, department=i.department,
                materials=list(i.materials), guide_url=i.guide_url,
                service=i.code if i.code in services else None)
        for i in await server.backend.catalog()
    ]


@api.post("/backend/appointments", body=AppointmentsIn, roles=BACKEND, tags=("backend",),
          summary="Import bookings made on the backend's portal (Q1)")
async def import_appointments(request: web.Request, body: AppointmentsIn) -> dict[str, Any]:
    principal = require(request, Role.BACKEND)
    server = server_of(request)
    layout = server.config.layout
    unknown = sorted({a.service for a in body.appointments} - layout.services.keys())
    if unknown:
        raise Problem(422, "unknown_service", "Appointments for services the hall lacks",
                      f"unknown services: {', '.join(unknown)}")
    rows = []
    for appointment in body.appointments:
        citizen = None
        if appointment.citizen is not None:
            person = appointment.citizen
            citizen = await server.citizens.save(Identity(person.name, person.id_number,
                                                          person.phone))
        rows.append((appointment.code, appointment.service, appointment.slot_start,
                     appointment.slot_end, citizen))
    imported = await server.backend.import_appointments(rows)
    await server.audit.record(principal, "appointments.import", None, {"count": imported})
    return {"imported": imported}


@api.get("/appointments/{code}", response=AppointmentOut,
         roles=("device", "staff", "manager", "admin", "backend"), tags=("appointments",),
         summary="An appointment by its code")
async def get_appointment(request: web.Request, code: str) -> AppointmentOut:
    found = await server_of(request).backend.appointment(code)
    if found is None:
        raise Problem(404, "unknown_appointment", f"No appointment {code!r}")
    return AppointmentOut(code=found.code, service=found.service, slot_start=found.slot_start,
                          slot_end=found.slot_end, status=found.status, ticket_id=found.ticket_id)


@api.post("/backend/cases/{case_id}/progress", body=ProgressIn, response=ProgressOut,
          status=201, roles=BACKEND, tags=("backend",),
          summary="Record the progress of a case (accepted, in review, done...)")
async def post_progress(request: web.Request, case_id: str, body: ProgressIn) -> ProgressOut:
    require(request, Role.BACKEND)
    server = server_of(request)
    progress = Progress(case_id, body.ticket_id, body.status, body.message,
                        body.at or server.runtime.clock.now())
    await server.backend.record_progress(progress)
    return ProgressOut(case_id=case_id, ticket_id=progress.ticket_id, status=progress.status,
                       message=progress.message, at=progress.at)


@api.get("/cases/{case_id}", response=list[ProgressOut], tags=("cases",),
         summary="A case's progress, by its code (touch query, mobile page)")
async def get_case(request: web.Request, case_id: str) -> list[ProgressOut]:
    steps = await server_of(request).backend.case(case_id)
    if not steps:
        raise Problem(404, "unknown_case", f"No case {case_id!r}")
    return [ProgressOut(case_id=p.case_id, ticket_id=p.ticket_id, status=p.status,
                        message=p.message, at=p.at) for p in steps]
