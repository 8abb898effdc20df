"""Appointment check-in (Q1), shared by the kiosk's REST call and its MQTT request.

The booking is claimed before the ticket is issued, so one code gives one
ticket however many kiosks try at once; a refused ticket gives the booking
back. A citizen late past the hall's grace is served as a walk-in or refused
(``[appointments] beyond_grace``); one with an ID card instead of the code
checks in today's earliest booking under that ID number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hall.appointments import arrival
from hall.audit import AuditEntry
from hall.committer import SideWrite
from hall.eventstore import StoredEvent
from hall.server import HallServer
from queueing import Source


class CheckInRefused(Exception):
    """The code names no appointment (``unknown_appointment``), one that cannot
    be checked in any more (``appointment_not_bookable``) or one whose citizen
    is too late for it (``appointment_too_late``); an ID number has no booking
    left today (``no_appointment_today``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def check_in(
    server: HallServer,
    appointment_code: str,
    *,
    audit: AuditEntry | None = None,
    side: Callable[[list[StoredEvent]], Sequence[SideWrite]] | None = None,
) -> list[StoredEvent]:
    backend = server.backend
    appointment = await backend.claim(appointment_code)
    if appointment is None:
        known = await backend.appointment(appointment_code)
        if known is None:
            raise CheckInRefused("unknown_appointment", f"no appointment {appointment_code!r}")
        raise CheckInRefused("appointment_not_bookable", f"the appointment is {known.status}")
    now = server.runtime.clock.now()
    served_as = arrival(server.config.appointments, appointment, now)
    if served_as is None:
        await backend.unclaim(appointment_code)
        raise CheckInRefused("appointment_too_late",
                             "the appointment's slot started too long ago; take a ticket")
    extra: dict[str, Any] = {}
    if appointment.citizen_id is not None:
        extra["citizen_ref"] = str(appointment.citizen_id)
    if served_as == "appointment":
        extra.update(source=Source.APPOINTMENT, appointment_slot=appointment.slot_start)
    else:
        extra.update(source=Source.WALK_IN)
    try:
        stored = await server.runtime.execute(
            "issue", appointment.service, audit=audit, side=side, **extra,
        )
    except BaseException:
        await backend.unclaim(appointment_code)
        raise
    ticket_id = stored[0].event.ticket_id  # type: ignore[attr-defined]
    await backend.checked_in(appointment_code, ticket_id, now, served_as)
    return stored


async def check_in_by_id_number(
    server: HallServer,
    id_number: str,
    *,
    audit: AuditEntry | None = None,
    side: Callable[[list[StoredEvent]], Sequence[SideWrite]] | None = None,
) -> list[StoredEvent]:
    """The earliest of today's bookings under this ID number that can still be
    checked in, found through the number's lookup hash (Q1: check-in by ID card)."""
    now = server.runtime.clock.now()
    booked = await server.appointments.today_of(id_number, now)
    if not booked:
        raise CheckInRefused("no_appointment_today", "no booking under this ID number today")
    refused: CheckInRefused | None = None
    for appointment in booked:
        try:
            return await check_in(server, appointment.code, audit=audit, side=side)
        except CheckInRefused as why:
            refused = refused or why
    assert refused is not None
    raise refused
