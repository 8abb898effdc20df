"""Citizens' identities, sealed in the ``citizens`` table.

The engine and the event log only ever hold the row id returned by ``save``,
an opaque reference: personal data then lives in one table, encrypted, and can
be purged or re-keyed without touching the event history.
"""

from __future__ import annotations

from typing import Any

import asyncpg

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

    async def forget(self, citizen_id: int) -> None:
        """Delete a citizen whose ticket was refused after all: personal data
        is kept only for a reason."""
        await self._pool.execute(
            "DELETE FROM citizens WHERE id = $1 AND hall_id = $2", citizen_id, self._hall_id
        )
