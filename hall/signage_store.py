"""Signage content in PostgreSQL (``signage_content``, ``signage_notices``).

Edits run in ``editing``: one transaction holding the hall's signage lock, with
the content read inside it, so the references a change is checked against
cannot change under it (two managers at once, or two servers).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import asyncpg

from signage import codec
from signage.model import Content, Notice

KINDS: dict[str, tuple[Callable[[Any], dict[str, Any]], Callable[[dict[str, Any]], Any]]] = {
    "layout": (codec.layout_to_json, codec.layout_from_json),
    "item": (codec.item_to_json, codec.item_from_json),
    "group": (codec.group_to_json, codec.group_from_json),
    "schedule": (codec.schedule_to_json, codec.schedule_from_json),
}


class SignageStore:
    def __init__(self, pool: asyncpg.Pool, hall_id: str) -> None:
        self._pool = pool
        self._hall_id = hall_id

    async def load(self, now: datetime) -> Content:
        """Everything, with the notices that have not expired or been withdrawn by ``now``."""
        async with self._pool.acquire() as connection:
            return await self._load(connection, now)

    @contextlib.asynccontextmanager
    async def editing(self, now: datetime) -> AsyncIterator[Editor]:
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "SELECT pg_advisory_xact_lock(hashtext('signage:' || $1))", self._hall_id)
            yield Editor(connection, self._hall_id, await self._load(connection, now))

    async def _load(self, connection: asyncpg.Connection, now: datetime) -> Content:
        rows = await connection.fetch(
            "SELECT kind, spec FROM signage_content WHERE hall_id = $1 ORDER BY kind, id",
            self._hall_id)
        found: dict[str, dict[str, Any]] = {kind: {} for kind in KINDS}
        for row in rows:
            entity = KINDS[row["kind"]][1](json.loads(row["spec"]))
            found[row["kind"]][entity.id] = entity
        notices = await connection.fetch(
            "SELECT id, text, level, starts_at, expires_at FROM signage_notices"
            " WHERE hall_id = $1 AND withdrawn_at IS NULL AND expires_at > $2"
            " ORDER BY starts_at, id",
            self._hall_id, now)
        return Content(
            layouts=found["layout"], items=found["item"], groups=found["group"],
            schedules=found["schedule"],
            notices=tuple(Notice(r["id"], r["text"], r["level"], r["starts_at"],
                                 r["expires_at"]) for r in notices),
        )


class Editor:
    """Writes within one ``editing`` transaction; ``content`` is what it read."""

    def __init__(self, connection: asyncpg.Connection, hall_id: str, content: Content) -> None:
        self.connection = connection
        self.hall_id = hall_id
        self.content = content

    async def put(self, kind: str, entity: Any, actor: str) -> bool:
        """Store ``entity`` under its id; True when it is new."""
        spec = json.dumps(KINDS[kind][0](entity), ensure_ascii=False)
        created = await self.connection.fetchval(
            "INSERT INTO signage_content (hall_id, kind, id, spec, updated_by)"
            " VALUES ($1, $2, $3, $4::jsonb, $5)"
            " ON CONFLICT (hall_id, kind, id) DO UPDATE SET spec = excluded.spec,"
            " updated_by = excluded.updated_by, updated_at = now()"
            " RETURNING xmax = 0",
            self.hall_id, kind, entity.id, spec, actor)
        return bool(created)

    async def delete(self, kind: str, entity_id: str) -> bool:
        status: str = await self.connection.execute(
            "DELETE FROM signage_content WHERE hall_id = $1 AND kind = $2 AND id = $3",
            self.hall_id, kind, entity_id)
        return status != "DELETE 0"

    async def add_notice(self, notice: Notice, actor: str) -> None:
        await self.connection.execute(
            "INSERT INTO signage_notices (hall_id, id, text, level, starts_at, expires_at,"
            " created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            self.hall_id, notice.id, notice.text, notice.level, notice.starts_at,
            notice.expires_at, actor)

    async def withdraw_notice(self, notice_id: str, actor: str) -> bool:
        status: str = await self.connection.execute(
            "UPDATE signage_notices SET withdrawn_at = now(), withdrawn_by = $3"
            " WHERE hall_id = $1 AND id = $2 AND withdrawn_at IS NULL",
            self.hall_id, notice_id, actor)
        return status != "UPDATE 0"
