"""The audit trail (G3): who did what, when and from where, for every staff
action and every configuration change, in the ``audit_log`` table.

Records are only ever added; the time is the database's, so that records
written by several servers share one clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from hall.auth import Principal


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
        """``action`` says what was done (``window.pause``), ``target`` to what
        (``w12a``); ``detail`` holds the rest, as JSON."""
        await self._pool.execute(
            "INSERT INTO audit_log (hall_id, actor, role, action, target, detail, remote)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7)",
            self._hall_id,
            principal.id,
            str(principal.role),
            action,
            target,
            json.dumps(dict(detail or {}), ensure_ascii=False),
            principal.remote,
        )

    async def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest records, newest first."""
        rows = await self._pool.fetch(
            "SELECT id, at, actor, role, action, target, detail, remote FROM audit_log"
            " WHERE hall_id = $1 ORDER BY id DESC LIMIT $2",
            self._hall_id,
            limit,
        )
        return [{**row, "detail": json.loads(row["detail"])} for row in rows]
