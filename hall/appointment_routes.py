"""Booking appointments from the web portal and the mobile page (Q1, M1).

Citizens have no accounts, so these routes are public: the booking's code,
50 random bits, is what changes or cancels it, and nobody holds more than
``bookings_per_citizen`` open bookings under one phone number or ID number.
Staff may book for a citizen with their session (channel ``staff``, audited).
The backend keeps importing its own portal's bookings
(``POST /backend/appointments``), which are changed there, not here.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from hall.api.problems import Problem
from hall.appointments import AppointmentRefused, Booking, Channel
from hall.auth import PRINCIPAL, STAFF_ROLES
from hall.pii import Identity, mask_name, mask_phone
from hall.routes import IdentityIn, api, server_of
from hall.server import HallServer
from hall.slots import NotBookable, check_bookable, day_slots, last_bookable_day

MAX_DAYS = 31


class SlotQuery(BaseModel):
    service: str = Field(max_length=64)
    from_: date | None = Field(None, alias="from", description="First day; today when omitted")
    to: date | None = Field(None, description="Last day, at most 31 days after the first")


class SlotOut(BaseModel):
    start: datetime
    end: datetime
    capacity: int
    remaining: int
    bookable: bool
    reason: str | None = Field(description="Why not bookable: slot_full, booking_closed...")


class SlotsOut(BaseModel):
    service: str
    slots: list[SlotOut]
    blackout_days: list[date]


class BookIn(BaseModel):
    service: str = Field(max_length=64)
    slot_start: datetime
    citizen: IdentityIn
    channel: Literal["mobile", "portal"] = "portal"

    @model_validator(mode="after")
    def _who(self) -> BookIn:
        if self.slot_start.tzinfo is None:
            raise ValueError("slot_start needs a time zone offset")
        if not (self.citizen.name and self.citizen.name.strip()):
            raise ValueError("a booking needs the citizen's name")
        if not (self.citizen.id_number or self.citizen.phone):
            raise ValueError("a booking needs the citizen's ID number or phone number")
        return self


class ChangeIn(BaseModel):
    slot_start: datetime

    @model_validator(mode="after")
    def _aware(self) -> ChangeIn:
        if self.slot_start.tzinfo is None:
            raise ValueError("slot_start needs a time zone offset")
        return self


class HolderOut(BaseModel):
    name: str | None
    phone: str | None


class BookingOut(BaseModel):
    code: str = Field(description="Checks the booking in at the kiosk; keep it private")
    service: str
    service_name: str
    slot_start: datetime
    slot_end: datetime
    status: str
    channel: str
    ticket_id: str | None
    holder: HolderOut | None = Field(description="Masked")


def refused(error: AppointmentRefused) -> Problem:
    return Problem(error.status, error.code, error.message)


async def booking_out(server: HallServer, booking: Booking) -> BookingOut:
    holder = await server.appointments.holder(booking)
    service = server.config.layout.services.get(booking.service)
    return BookingOut(
        code=booking.code, service=booking.service,
        service_name=service.name if service is not None else booking.service,
        slot_start=booking.slot_start, slot_end=booking.slot_end, status=booking.status,
        channel=booking.channel, ticket_id=booking.ticket_id,
        holder=None if holder is None else HolderOut(
            name=mask_name(holder.name), phone=mask_phone(holder.phone)),
    )


@api.get("/appointment-slots", query=SlotQuery, response=SlotsOut, tags=("appointments",),
         summary="A service's slots over some days, with the places left (Q1, M1)")
async def list_slots(request: web.Request, query: SlotQuery) -> SlotsOut:
    server = server_of(request)
    desk = server.appointments
    rule = desk.config.services.get(query.service)
    if rule is None:
        raise Problem(404, "unknown_service", f"service {query.service!r} takes no appointments")
    zone = desk.zone
    now = server.runtime.clock.now()
    first = query.from_ or now.astimezone(zone).date()
    last = query.to or first
    if last < first or (last - first).days >= MAX_DAYS:
        raise Problem(422, "bad_range", f"from..to must be 1 to {MAX_DAYS} days in order")
    last = min(last, last_bookable_day(rule, now, zone))
    since = datetime.combine(first, time(0), zone)
    booked = await desk.booked_counts(query.service, since,
                                      datetime.combine(last, time(0), zone) + timedelta(days=1))
    slots: list[SlotOut] = []
    blackout: list[date] = []
    day = first
    while day <= last:
        found = day_slots(desk.config, rule, day, zone)
        if not found and (day in desk.config.blackout_days or day in rule.blackout_days):
            blackout.append(day)
        for slot in found:
            remaining = max(0, rule.capacity - booked.get(slot.start, 0))
            reason = None if remaining else "slot_full"
            try:
                check_bookable(desk.config, query.service, slot.start, now, zone)
            except NotBookable as why:
                reason = why.code
            slots.append(SlotOut(start=slot.start, end=slot.end, capacity=rule.capacity,
                                 remaining=remaining, bookable=reason is None, reason=reason))
        day += timedelta(days=1)
    return SlotsOut(service=query.service, slots=slots, blackout_days=blackout)


@api.post("/bookings", body=BookIn, response=BookingOut, status=201, tags=("appointments",),
          summary="Book a slot; the answer's code checks it in at the kiosk (Q1, M1)")
async def book(request: web.Request, body: BookIn) -> BookingOut:
    server = server_of(request)
    principal = request.get(PRINCIPAL)
    by_staff = principal is not None and principal.role in STAFF_ROLES
    channel: Channel = "staff" if by_staff else body.channel
    person = body.citizen
    try:
        booking = await server.appointments.book(
            body.service, body.slot_start, Identity(person.name, person.id_number, person.phone),
            channel, server.runtime.clock.now(),
        )
    except AppointmentRefused as error:
        raise refused(error) from error
    if by_staff:
        assert principal is not None
        await server.audit.record(principal, "appointment.book", str(booking.id),
                                  {"service": booking.service,
                                   "slot_start": booking.slot_start.isoformat()})
    return await booking_out(server, booking)


@api.get("/bookings/{code}", response=BookingOut, tags=("appointments",),
         summary="A booking by its code, the holder masked")
async def get_booking(request: web.Request, code: str) -> BookingOut:
    server = server_of(request)
    booking = await server.appointments.get(code)
    if booking is None:
        raise Problem(404, "unknown_appointment", "No appointment with this code")
    return await booking_out(server, booking)


@api.post("/bookings/{code}/change", body=ChangeIn, response=BookingOut,
          tags=("appointments",), summary="Move a booking to another slot of its service")
async def change_booking(request: web.Request, code: str, body: ChangeIn) -> BookingOut:
    server = server_of(request)
    try:
        booking = await server.appointments.change(code, body.slot_start,
                                                   server.runtime.clock.now())
    except AppointmentRefused as error:
        raise refused(error) from error
    await _audit_staff(request, "appointment.change", booking)
    return await booking_out(server, booking)


@api.post("/bookings/{code}/cancel", response=BookingOut, tags=("appointments",),
          summary="Cancel a booking; its place is free again")
async def cancel_booking(request: web.Request, code: str) -> BookingOut:
    server = server_of(request)
    try:
        booking = await server.appointments.cancel(code, server.runtime.clock.now())
    except AppointmentRefused as error:
        raise refused(error) from error
    await _audit_staff(request, "appointment.cancel", booking)
    return await booking_out(server, booking)


async def _audit_staff(request: web.Request, action: str, booking: Booking) -> None:
    principal = request.get(PRINCIPAL)
    if principal is not None and principal.role in STAFF_ROLES:
        await server_of(request).audit.record(
            principal, action, str(booking.id),
            {"slot_start": booking.slot_start.isoformat()})
