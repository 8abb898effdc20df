"""The audit trail (G3): who did what, when and from where, for every staff
action and every configuration change, in the ``audit_log`` table.

Records are only ever added; the time is the database's, so that records
written by several servers share one clock. A record of a change to the hall
is written in the same transaction as the change's events (``AuditEntry``
through ``HallRuntime.execute``), so no change is stored without its record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import asyncpg

from hall.auth import Principal
from hall.rows import SideTable


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """``action`` says what was done (``window.pause``), ``target`` to what
    (``w12a``); ``detail`` holds the rest, as JSON."""

    principal: Principal
    action: str
    target: str | None = None
    detail: Mapping[str, object] = field(default_factory=dict)

    table: ClassVar[SideTable] = SideTable("audit_log", (
        ("actor", "text"), ("role", "text"), ("action", "text"), ("target", "text"),
        ("detail", "jsonb"), ("remote", "text"),
    ))

    def row(self) -> tuple[str, str, str, str | None, str, str | None]:
        return (self.principal.id, str(self.principal.role), self.action, self.target,
                json.dumps(dict(self.detail), ensure_ascii=False), self.principal.remote)


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
        await AuditEntry.table.write(self._pool, self._hall_id, [entry.row()])

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest records, newest first."""
        rows = await self._pool.fetch(
            "SELECT id, at, actor, role, action, target, detail, remote FROM audit_log"
            " WHERE hall_id = $1 ORDER BY id DESC LIMIT $2",
            self._hall_id,
            limit,
        )
        return [{**row, "detail": json.loads(row["detail"])} for row in rows]
