"""What the approval backend pushes to the hall, kept in PostgreSQL.

The backend owns the item catalog (Q9), bookings made on its portal (Q1) and
the progress of cases (D11); the hall owns its queue. A catalog push is the
whole catalog: items missing from it are gone. An appointment is claimed
before its ticket is issued, so two kiosks checking in the same code cannot
both get a ticket.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True, slots=True)
class CatalogItem:
    code: str
    name: str
    category: str
    department: str = ""
    materials: tuple[str, ...] = ()
    guide_url: str | None = None


@dataclass(frozen=True, slots=True)
class Appointment:
    code: str
    service: str
    slot_start: datetime
    slot_end: datetime
    citizen_id: int | None
    status: str
    ticket_id: str | None


@dataclass(frozen=True, slots=True)
class Progress:
    case_id: str
    ticket_id: str | None
    status: str
    message: str
    at: datetime


@dataclass(frozen=True, slots=True)
class CatalogSync:
    """What a catalog push changed, and what does not line up with the hall."""

    items: int
    removed: int
    services_without_item: tuple[str, ...]
    items_without_service: tuple[str, ...]


class BackendStore:
    def __init__(self, pool: asyncpg.Pool, hall_id: str) -> None:
        self._pool = pool
        self._hall_id = hall_id

    async def sync_catalog(
        self, items: Sequence[CatalogItem], hall_services: Iterable[str]
    ) -> CatalogSync:
        codes = [item.code for item in items]
        async with self._pool.acquire() as connection, connection.transaction():
            removed = await connection.fetchval(
                "WITH gone AS (DELETE FROM catalog_items WHERE hall_id = $1"
                " AND NOT (code = ANY($2::text[])) RETURNING 1) SELECT count(*) FROM gone",
                self._hall_id,
                codes,
            )
            await connection.executemany(
                "INSERT INTO catalog_items"
                " (hall_id, code, name, category, department, materials, guide_url)"
                " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)"
                " ON CONFLICT (hall_id, code) DO UPDATE SET name = excluded.name,"
                " category = excluded.category, department = excluded.department,"
                " materials = excluded.materials, guide_url = excluded.guide_url,"
                " updated_at = now()",
                [
                    (self._hall_id, i.code, i.name, i.category, i.department,
                     json.dumps(list(i.materials), ensure_ascii=False), i.guide_url)
                    for i in items
                ],
            )
        services = set(hall_services)
        return CatalogSync(
            items=len(items),
            removed=int(removed),
            services_without_item=tuple(sorted(services - set(codes))),
            items_without_service=tuple(sorted(set(codes) - services)),
        )

    async def catalog(self) -> list[CatalogItem]:
        rows = await self._pool.fetch(
            "SELECT * FROM catalog_items WHERE hall_id = $1 ORDER BY code", self._hall_id
        )
        return [
            CatalogItem(r["code"], r["name"], r["category"], r["department"],
                        tuple(json.loads(r["materials"])), r["guide_url"])
            for r in rows
        ]

    async def import_appointments(
        self, appointments: Sequence[tuple[str, str, datetime, datetime, int | None]]
    ) -> int:
        """Insert or update bookings (code, service, start, end, citizen);
        one already checked in or cancelled is left as it is."""
        await self._pool.executemany(
            "INSERT INTO appointments (hall_id, code, service, slot_start, slot_end, citizen_id)"
            " VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (hall_id, code) DO UPDATE SET service = excluded.service,"
            " slot_start = excluded.slot_start, slot_end = excluded.slot_end,"
            " citizen_id = excluded.citizen_id WHERE appointments.status = 'booked'",
            [(self._hall_id, *appointment) for appointment in appointments],
        )
        return len(appointments)

    async def appointment(self, code: str) -> Appointment | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM appointments WHERE hall_id = $1 AND code = $2", self._hall_id, code
        )
        return None if row is None else _appointment(row)

    async def claim(self, code: str) -> Appointment | None:
        """Take a booked appointment for check-in; None when it is not booked."""
        row = await self._pool.fetchrow(
            "UPDATE appointments SET status = 'checking_in'"
            " WHERE hall_id = $1 AND code = $2 AND status = 'booked' RETURNING *",
            self._hall_id,
            code,
        )
        return None if row is None else _appointment(row)

    async def unclaim(self, code: str) -> None:
        await self._pool.execute(
            "UPDATE appointments SET status = 'booked'"
            " WHERE hall_id = $1 AND code = $2 AND status = 'checking_in'",
            self._hall_id,
            code,
        )

    async def checked_in(
        self, code: str, ticket_id: str, at: datetime, served_as: str = "appointment"
    ) -> None:
        """``served_as`` is ``walk_in`` for one checked in past the late grace
        (``hall.appointments.arrival``)."""
        await self._pool.execute(
            "UPDATE appointments SET status = 'checked_in', ticket_id = $3,"
            " checked_in_at = $4, checked_in_as = $5 WHERE hall_id = $1 AND code = $2",
            self._hall_id,
            code,
            ticket_id,
            at,
            served_as,
        )

    async def record_progress(self, progress: Progress) -> None:
        await self._pool.execute(
            "INSERT INTO case_progress (hall_id, case_id, ticket_id, status, message, at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            self._hall_id,
            progress.case_id,
            progress.ticket_id,
            progress.status,
            progress.message,
            progress.at,
        )

    async def case(self, case_id: str) -> list[Progress]:
        rows = await self._pool.fetch(
            "SELECT * FROM case_progress WHERE hall_id = $1 AND case_id = $2 ORDER BY at, id",
            self._hall_id,
            case_id,
        )
        return [Progress(r["case_id"], r["ticket_id"], r["status"], r["message"], r["at"])
                for r in rows]


def _appointment(row: Any) -> Appointment:
    return Appointment(
        row["code"], row["service"], row["slot_start"], row["slot_end"], row["citizen_id"],
        row["status"], row["ticket_id"],
    )
