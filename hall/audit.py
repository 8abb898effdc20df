"""The audit trail (G3): who did what, when and from where, for every staff
action and every configuration change, in the ``audit_log`` table.

Records are only ever added; the time is the database's, so that records
written by several servers share one clock. A record of a change to the hall
is written in the same transaction as the change's events (``AuditEntry``
through ``HallRuntime.execute``), so no change is stored without its record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from hall.auth import Principal


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """``action`` says what was done (``window.pause``), ``target`` to what
    (``w12a``); ``detail`` holds the rest, as JSON."""

    principal: Principal
    action: str
    target: str | None = None
    detail: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    async def write_many(
        cls, connection: asyncpg.Connection, hall_id: str, rows: Sequence[AuditEntry]
    ) -> None:
        await write_entries(connection, hall_id, rows)


async def write_entries(
    connection: asyncpg.Connection, hall_id: str, entries: Sequence[AuditEntry]
) -> None:
    await connection.executemany(
        "INSERT INTO audit_log (hall_id, actor, role, action, target, detail, remote)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
        [
            (hall_id, e.principal.id, str(e.principal.role), e.action, e.target,
             json.dumps(dict(e.detail), ensure_ascii=False), e.principal.remote)
            for e in entries
        ],
    )


class AuditLog:
    """One hall's audit trail."""

    def __init__(self, pool: asyncpg.Pool, hall_id: str) -> None:
        self._pool = pool
        self._hall_id = hall_id

    async def record(
        self,
        principal: Principal,
        action: str,
        target: str | None = None,
        detail: Mapping[str, object] | None = None,
    ) -> None:
        """For what changes no engine state (a login); changes to the hall go
        with their events through ``HallRuntime.execute(..., audit=...)``."""
        entry = AuditEntry(principal, action, target, detail or {})
        async with self._pool.acquire() as connection:
            await write_entries(connection, self._hall_id, [entry])

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest records, newest first."""
        rows = await self._pool.fetch(
            "SELECT id, at, actor, role, action, target, detail, remote FROM audit_log"
            " WHERE hall_id = $1 ORDER BY id DESC LIMIT $2",
            self._hall_id,
            limit,
        )
        return [{**row, "detail": json.loads(row["detail"])} for row in rows]
