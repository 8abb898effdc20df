"""Appointments booked in the hall's own pages (Q1): book, change and cancel
against slot capacity, the late policy of a check-in, and the sweep that marks
missed ones.

Capacity holds under concurrency because a place is taken by one conditional
upsert of the slot's row in ``appointment_slots``: PostgreSQL locks the row, so
of two bookings racing for the last place the second sees it taken and books
nothing (``CHECK (booked <= capacity)`` is the last line of defence). The
per-citizen limit takes an advisory lock on the citizen's lookup hash first, so
one phone number cannot slip two bookings past it at once.

Bookings the backend imports (``hall.backend``) are the backend's: they take no
place here and are changed there, but they check in, are late and are missed
like the hall's own.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Any, Literal

import asyncpg

from hall.appointment_config import AppointmentConfig
from hall.backend import Appointment
from hall.citizens import CitizenStore
from hall.committer import CommitFailed
from hall.eventstore import StoredEvent
from hall.hall_events import (
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentChanged,
    AppointmentMissed,
)
from hall.pii import ID_NUMBER, PHONE, Identity, Vault
from hall.remote_tickets import RemoteTickets
from hall.runtime import HallRuntime, Unavailable
from hall.slots import NotBookable, Slot, check_bookable
from queueing import Event

log = logging.getLogger(__name__)

Channel = Literal["mobile", "portal", "staff"]
Arrival = Literal["appointment", "walk_in"]

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
"""50 random bits: the code alone changes or cancels a booking, so it must not
be guessable, and it is short enough to type at a kiosk."""


class AppointmentRefused(Exception):
    """A booking, change or cancellation that cannot be made, with the HTTP status
    and stable code the API answers with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Booking:
    id: int
    code: str
    service: str
    slot_start: datetime
    slot_end: datetime
    status: str
    channel: str
    citizen_id: int | None
    ticket_id: str | None
    checked_in_as: str | None


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def arrival(config: AppointmentConfig, appointment: Appointment, now: datetime) -> Arrival | None:
    """How a check-in at ``now`` is served: as the appointment within the late
    grace, after it as a walk-in or not at all (None), as the hall's policy says."""
    if now <= appointment.slot_start + config.late_grace:
        return "appointment"
    return "walk_in" if config.beyond_grace == "walk_in" else None


def _lock_key(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big", signed=True)


class AppointmentDesk:
    def __init__(
        self,
        pool: asyncpg.Pool,
        vault: Vault,
        citizens: CitizenStore,
        runtime: HallRuntime,
        config: AppointmentConfig,
    ) -> None:
        self._pool = pool
        self._vault = vault
        self._citizens = citizens
        self._runtime = runtime
        self.config = config
        self.zone = runtime.config.timezone
        self._hall_id = runtime.hall_id
        self.remote = RemoteTickets(pool, vault, self._hall_id, config.tickets_per_phone_per_day)
        runtime.on_tick.append(self.sweep)

    # ------------------------------------------------------------ reading

    async def booked_counts(
        self, service: str, first: datetime, last: datetime
    ) -> dict[datetime, int]:
        """Places taken so far in the slots starting in [first, last)."""
        rows = await self._pool.fetch(
            "SELECT slot_start, booked FROM appointment_slots WHERE hall_id = $1"
            " AND service = $2 AND slot_start >= $3 AND slot_start < $4",
            self._hall_id, service, first, last,
        )
        return {row["slot_start"]: row["booked"] for row in rows}

    async def get(self, code: str) -> Booking | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM appointments WHERE hall_id = $1 AND code = $2", self._hall_id, code
        )
        return None if row is None else self._booking(row)

    async def holder(self, booking: Booking) -> Identity | None:
        if booking.citizen_id is None:
            return None
        return await self._citizens.load(booking.citizen_id)

    async def today_of(self, id_number: str, now: datetime) -> list[Appointment]:
        """Today's bookings of whoever holds this ID number, found through its
        lookup hash, still waiting for their check-in, earliest first."""
        citizens = sorted(set(await self._citizens.find_by_id_number(id_number)))
        start = datetime.combine(now.astimezone(self.zone).date(), time(0), self.zone)
        found = await self._citizens.appointments_of(citizens, start, start + timedelta(days=1))
        return [a for a in found if a.status == "booked"]

    # ------------------------------------------------------------ booking

    async def book(
        self, service: str, start: datetime, identity: Identity, channel: Channel,
        now: datetime,
    ) -> Booking:
        slot = self._bookable(service, start, now)
        rule = self.config.services[service]
        phone = self._hash(PHONE, identity.phone)
        id_number = self._hash(ID_NUMBER, identity.id_number)
        citizen = await self._citizens.save(identity)
        try:
            async with self._pool.acquire() as connection, connection.transaction():
                await self._hold_limit(connection, phone, id_number, now)
                await self._take_place(connection, service, slot.start, rule.capacity)
                row = await self._insert(connection, service, slot.start, slot.end, citizen,
                                         channel, phone, id_number)
        except BaseException:
            await self._citizens.forget(citizen)
            raise
        booking = self._booking(row)
        await self._announce(AppointmentBooked(
            now, booking.id, service, booking.slot_start, booking.slot_end, channel,
            str(citizen)))
        return booking

    async def change(self, code: str, start: datetime, now: datetime) -> Booking:
        async with self._pool.acquire() as connection, connection.transaction():
            old = await self._own(connection, code)
            slot = self._bookable(old.service, start, now)
            if slot.start == old.slot_start:
                return old
            capacity = self.config.services[old.service].capacity
            await self._take_place(connection, old.service, slot.start, capacity)
            await self._give_place(connection, old.service, old.slot_start)
            row = await connection.fetchrow(
                "UPDATE appointments SET slot_start = $3, slot_end = $4"
                " WHERE hall_id = $1 AND code = $2 RETURNING *",
                self._hall_id, code, slot.start, slot.end,
            )
        booking = self._booking(row)
        await self._announce(AppointmentChanged(
            now, booking.id, booking.service, booking.slot_start, booking.slot_end,
            old.slot_start, _ref(booking)))
        return booking

    async def cancel(self, code: str, now: datetime) -> Booking:
        async with self._pool.acquire() as connection, connection.transaction():
            old = await self._own(connection, code)
            await self._give_place(connection, old.service, old.slot_start)
            row = await connection.fetchrow(
                "UPDATE appointments SET status = 'cancelled'"
                " WHERE hall_id = $1 AND code = $2 RETURNING *",
                self._hall_id, code,
            )
        booking = self._booking(row)
        await self._announce(AppointmentCancelled(
            now, booking.id, booking.service, booking.slot_start, _ref(booking)))
        return booking

    def _bookable(self, service: str, start: datetime, now: datetime) -> Slot:
        try:
            return check_bookable(self.config, service, start, now, self.zone)
        except NotBookable as refused:
            status = 404 if refused.code == "unknown_service" else 409
            if refused.code == "not_a_slot":
                status = 422
            raise AppointmentRefused(status, refused.code, refused.message) from refused

    def _hash(self, field: str, value: str | None) -> bytes | None:
        if not value or not value.strip():
            return None
        return self._vault.lookup_hash(field, value)

    async def _hold_limit(
        self, connection: asyncpg.Connection, phone: bytes | None, id_number: bytes | None,
        now: datetime,
    ) -> None:
        keys = sorted({_lock_key(d) for d in (phone, id_number) if d is not None})
        for key in keys:
            await connection.execute("SELECT pg_advisory_xact_lock($1)", key)
        open_ones = await connection.fetchval(
            "SELECT count(*) FROM appointments WHERE hall_id = $1 AND status = 'booked'"
            " AND slot_end > $2 AND (phone_hmac = $3 OR id_hmac = $4)",
            self._hall_id, now, phone, id_number,
        )
        limit = self.config.bookings_per_citizen
        if open_ones >= limit:
            raise AppointmentRefused(
                409, "too_many_bookings",
                f"at most {limit} open bookings per phone number or ID number")

    async def _take_place(
        self, connection: asyncpg.Connection, service: str, start: datetime, capacity: int
    ) -> None:
        booked = await connection.fetchval(
            "INSERT INTO appointment_slots (hall_id, service, slot_start, capacity, booked)"
            " VALUES ($1, $2, $3, $4, 1)"
            " ON CONFLICT (hall_id, service, slot_start) DO UPDATE"
            " SET capacity = excluded.capacity, booked = appointment_slots.booked + 1"
            " WHERE appointment_slots.booked < excluded.capacity RETURNING booked",
            self._hall_id, service, start, capacity,
        )
        if booked is None:
            raise AppointmentRefused(
                409, "slot_full", f"the {start.astimezone(self.zone):%Y-%m-%d %H:%M} slot "
                "is fully booked")

    async def _give_place(
        self, connection: asyncpg.Connection, service: str, start: datetime
    ) -> None:
        await connection.execute(
            "UPDATE appointment_slots SET booked = booked - 1 WHERE hall_id = $1"
            " AND service = $2 AND slot_start = $3 AND booked > 0",
            self._hall_id, service, start,
        )

    async def _insert(
        self, connection: asyncpg.Connection, service: str, start: datetime, end: datetime,
        citizen: int, channel: str, phone: bytes | None, id_number: bytes | None,
    ) -> Any:
        while True:
            row = await connection.fetchrow(
                "INSERT INTO appointments (hall_id, code, service, slot_start, slot_end,"
                " citizen_id, channel, phone_hmac, id_hmac)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (hall_id, code) DO NOTHING RETURNING *",
                self._hall_id, new_code(), service, start, end, citizen, channel, phone,
                id_number,
            )
            if row is not None:
                return row

    async def _own(self, connection: asyncpg.Connection, code: str) -> Booking:
        """A booking of the hall's own pages that is still open, locked for the change."""
        row = await connection.fetchrow(
            "SELECT * FROM appointments WHERE hall_id = $1 AND code = $2 FOR UPDATE",
            self._hall_id, code,
        )
        if row is None:
            raise AppointmentRefused(404, "unknown_appointment", f"no appointment {code!r}")
        booking = self._booking(row)
        if booking.channel == "backend":
            raise AppointmentRefused(
                409, "managed_by_backend",
                "this booking was made on the backend's portal; change it there")
        if booking.status != "booked":
            raise AppointmentRefused(
                409, "appointment_not_bookable", f"the appointment is {booking.status}")
        return booking

    # ------------------------------------------------------------ missed

    async def sweep(self, now: datetime) -> list[StoredEvent]:
        """Mark bookings nobody checked in by their slot's end plus the late grace
        as missed, and announce each once: a booking marked but not announced
        (the event log was failing) is announced by the next sweep."""
        try:
            await self._pool.execute(
                "UPDATE appointments SET status = 'missed' WHERE hall_id = $1"
                " AND status = 'booked' AND slot_end < $2",
                self._hall_id, now - self.config.late_grace,
            )
            rows = await self._pool.fetch(
                "SELECT * FROM appointments WHERE hall_id = $1 AND status = 'missed'"
                " AND missed_seq IS NULL ORDER BY slot_start, id LIMIT 1000",
                self._hall_id,
            )
            if not rows:
                return []
            missed = [self._booking(row) for row in rows]
            stored = await self._runtime.record([
                AppointmentMissed(now, b.id, b.service, b.slot_start, b.slot_end, _ref(b))
                for b in missed
            ])
            await self._pool.execute(
                "UPDATE appointments SET missed_seq = s.seq"
                " FROM unnest($2::bigint[], $3::bigint[]) AS s(id, seq)"
                " WHERE appointments.hall_id = $1 AND appointments.id = s.id",
                self._hall_id, [b.id for b in missed], [s.seq for s in stored],
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, Unavailable,
                CommitFailed) as exc:
            log.warning("missed appointments not swept now: %s", exc)
            return []
        log.info("%d appointments missed", len(missed))
        return stored

    def _booking(self, row: Any) -> Booking:
        """Slot times in the hall's zone, as the citizen reads them."""
        booking = _booking(row)
        return replace(booking, slot_start=booking.slot_start.astimezone(self.zone),
                       slot_end=booking.slot_end.astimezone(self.zone))

    async def _announce(self, event: Event) -> None:
        """The booking is stored already; a log that cannot take its event now
        costs the stream one event, never the citizen the booking."""
        try:
            await self._runtime.record([event])
        except (Unavailable, CommitFailed) as exc:
            log.warning("%s not announced: %s", event.type, exc)


def _ref(booking: Booking) -> str | None:
    return None if booking.citizen_id is None else str(booking.citizen_id)


def _booking(row: Any) -> Booking:
    return Booking(
        id=row["id"], code=row["code"], service=row["service"], slot_start=row["slot_start"],
        slot_end=row["slot_end"], status=row["status"], channel=row["channel"],
        citizen_id=row["citizen_id"], ticket_id=row["ticket_id"],
        checked_in_as=row["checked_in_as"],
    )

