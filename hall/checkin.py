"""Appointment check-in (Q1), shared by the kiosk's REST call and its MQTT request.

The booking is claimed before the ticket is issued, so one code gives one
ticket however many kiosks try at once; a refused ticket gives the booking
back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hall.audit import AuditEntry
from hall.committer import SideWrite
from hall.eventstore import StoredEvent
from hall.server import HallServer
from queueing import Source


class CheckInRefused(Exception):
    """The code names no appointment (``unknown_appointment``) or one that
    cannot be checked in any more (``appointment_not_bookable``)."""

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
    extra: dict[str, Any] = {}
    if appointment.citizen_id is not None:
        extra["citizen_ref"] = str(appointment.citizen_id)
    try:
        stored = await server.runtime.execute(
            "issue", appointment.service, Source.APPOINTMENT,
            appointment_slot=appointment.slot_start, audit=audit, side=side, **extra,
        )
    except BaseException:
        await backend.unclaim(appointment_code)
        raise
    await backend.checked_in(appointment_code, stored[0].event.ticket_id)  # type: ignore[attr-defined]
    return stored
