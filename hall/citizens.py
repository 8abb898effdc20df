"""Citizens' identities, sealed in the ``citizens`` table.

The engine and the event log only ever hold the row id returned by ``save``,
an opaque reference: personal data then lives in one table, encrypted, and can
be purged or re-keyed without touching the event history.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from hall.backend import Appointment, Progress
from hall.pii import ID_NUMBER, NAME, PHONE, Identity, Vault, normalize

_INSERT = """
INSERT INTO citizens (hall_id, name_enc, id_number_enc, phone_enc, id_number_hmac)
VALUES ($1, $2, $3, $4, $5)
RETURNING id
"""

_SELECT = """
SELECT name_enc, id_number_enc, phone_enc
FROM citizens
WHERE id = $1 AND hall_id = $2
"""

_APPOINTMENTS = """
SELECT code, service, slot_start, slot_end, citizen_id, status, ticket_id
FROM appointments
WHERE hall_id = $1 AND citizen_id = ANY($2::bigint[]) AND slot_start >= $3 AND slot_start < $4
ORDER BY slot_start, code
"""

_PROGRESS = """
SELECT case_id, ticket_id, status, message, at
FROM case_progress
WHERE hall_id = $1 AND ticket_id = ANY($2::text[])
ORDER BY at, id
"""

_FIND = """
SELECT id
FROM citizens
WHERE hall_id = $1 AND id_number_hmac = $2
ORDER BY id
"""


def _clean(field: str, value: str | None) -> str | None:
    """Stored in the one spelling the lookup hash uses, so what loads back is
    what a search finds; a blank value is stored as absent."""
    if value is None:
        return None
    cleaned = normalize(field, value)
    return cleaned or None


class CitizenStore:
    """Every query is scoped to this hall, so one hall's server cannot read
    another hall's citizens even when they share a database."""

    def __init__(self, pool: asyncpg.Pool, vault: Vault, hall_id: str) -> None:
        self._pool = pool
        self._vault = vault
        self._hall_id = hall_id

    def _seal(self, field: str, value: str | None) -> bytes | None:
        return None if value is None else self._vault.seal(field, value)

    def _open(self, field: str, sealed: bytes | None) -> str | None:
        return None if sealed is None else self._vault.open(field, sealed)

    async def save(self, identity: Identity) -> int:
        name = _clean(NAME, identity.name)
        id_number = _clean(ID_NUMBER, identity.id_number)
        phone = _clean(PHONE, identity.phone)
        lookup = None if id_number is None else self._vault.lookup_hash(ID_NUMBER, id_number)
        citizen_id: int = await self._pool.fetchval(
            _INSERT,
            self._hall_id,
            self._seal(NAME, name),
            self._seal(ID_NUMBER, id_number),
            self._seal(PHONE, phone),
            lookup,
        )
        return citizen_id

    async def load(self, citizen_id: int) -> Identity | None:
        row: Any = await self._pool.fetchrow(_SELECT, citizen_id, self._hall_id)
        if row is None:
            return None
        return Identity(
            name=self._open(NAME, row["name_enc"]),
            id_number=self._open(ID_NUMBER, row["id_number_enc"]),
            phone=self._open(PHONE, row["phone_enc"]),
        )

    async def find_by_id_number(self, id_number: str) -> list[int]:
        lookup = self._vault.lookup_hash(ID_NUMBER, id_number)
        rows: list[Any] = await self._pool.fetch(_FIND, self._hall_id, lookup)
        return [row["id"] for row in rows]

    async def appointments_of(
        self, citizen_ids: Sequence[int], since: datetime, until: datetime
    ) -> list[Appointment]:
        """The bookings of these citizen rows whose slot starts in [since, until):
        one person has a row per ticket or booking, found together by ID number."""
        if not citizen_ids:
            return []
        rows: list[Any] = await self._pool.fetch(
            _APPOINTMENTS, self._hall_id, list(citizen_ids), since, until
        )
        return [
            Appointment(r["code"], r["service"], r["slot_start"], r["slot_end"],
                        r["citizen_id"], r["status"], r["ticket_id"])
            for r in rows
        ]

    async def progress_of(self, ticket_ids: Sequence[str]) -> list[Progress]:
        """The backend's progress reports of the cases these tickets opened, oldest first."""
        if not ticket_ids:
            return []
        rows: list[Any] = await self._pool.fetch(_PROGRESS, self._hall_id, list(ticket_ids))
        return [Progress(r["case_id"], r["ticket_id"], r["status"], r["message"], r["at"])
                for r in rows]

    async def forget(self, citizen_id: int) -> None:
        """Delete a citizen whose ticket was refused after all: personal data
        is kept only for a reason."""
        await self._pool.execute(
            "DELETE FROM citizens WHERE id = $1 AND hall_id = $2", citizen_id, self._hall_id
        )
