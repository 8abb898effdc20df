"""The audit trail over REST (G3): managers page through who did what, newest first.

Keyset paging: each page gives ``next_before``, the id to pass as ``before`` for the
next (older) page, so a page stays the same while new records keep arriving.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hall.auth import Role, require
from hall.routes import MANAGERS, api, server_of


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=500)
    before: int | None = Field(None, ge=1, description="Only records older than this id")
    action: str | None = Field(None, max_length=64,
                               description="Actions starting with this, e.g. window. or "
                                           "signage.notice")
    actor: str | None = Field(None, max_length=64, description="One staff id")


class AuditRecord(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    action: str
    target: str | None
    detail: dict[str, Any]
    remote: str | None


class AuditPage(BaseModel):
    records: list[AuditRecord]
    next_before: int | None = Field(description="Pass as before= for the next page; "
                                                "null on the last page")


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@api.get("/audit", query=AuditQuery, response=AuditPage, roles=MANAGERS, tags=("audit",),
         summary="The audit log, newest first, a page at a time (G3)")
async def list_audit(request: web.Request, query: AuditQuery) -> AuditPage:
    require(request, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    rows = await server.pool.fetch(
        "SELECT id, at, actor, role, action, target, detail, remote FROM audit_log"
        " WHERE hall_id = $1 AND ($2::bigint IS NULL OR id < $2)"
        " AND ($3::text IS NULL OR action LIKE $3)"
        " AND ($4::text IS NULL OR actor = $4)"
        " ORDER BY id DESC LIMIT $5",
        server.config.layout.hall_id,
        query.before,
        None if not query.action else _like_prefix(query.action),
        query.actor or None,
        query.limit + 1,
    )
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    records = [AuditRecord(**{**row, "detail": json.loads(row["detail"])}) for row in rows]
    return AuditPage(records=records, next_before=records[-1].id if more else None)
