"""What the device link keeps in PostgreSQL: answers to device requests (so
a retry is answered without repeating the effect), managers' approvals of
unannounced devices, and ratings from evaluation terminals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

import asyncpg

from hall.rows import SideTable


@dataclass(frozen=True, slots=True)
class KeptReply:
    """A side row of the change the request made (``HallRuntime.execute(side=...)``)."""

    device_id: str
    request_id: str
    reply: bytes

    table: ClassVar[SideTable] = SideTable(
        "device_replies", (("device_id", "text"), ("request_id", "text"), ("reply", "jsonb")),
        "ON CONFLICT DO NOTHING")

    def row(self) -> tuple[str, str, str]:
        return (self.device_id, self.request_id, self.reply.decode())


@dataclass(frozen=True, slots=True)
class Approval:
    device_id: str
    kind: str
    name: str
    area: str | None
    window: str | None
    screen: str | None
    approved_by: str


class DeviceStore:
    def __init__(self, pool: asyncpg.Pool, hall_id: str) -> None:
        self._pool = pool
        self._hall_id = hall_id

    async def kept_reply(self, device_id: str, request_id: str) -> bytes | None:
        value = await self._pool.fetchval(
            "SELECT reply FROM device_replies"
            " WHERE hall_id = $1 AND device_id = $2 AND request_id = $3",
            self._hall_id,
            device_id,
            request_id,
        )
        return None if value is None else str(value).encode()

    async def keep_reply(self, device_id: str, request_id: str, reply: bytes) -> None:
        """For answers that changed nothing (a refusal): kept on their own."""
        kept = KeptReply(device_id, request_id, reply)
        await KeptReply.table.write(self._pool, self._hall_id, [kept.row()])

    async def forget_replies_before(self, moment: datetime) -> int:
        result: str = await self._pool.execute(
            "DELETE FROM device_replies WHERE hall_id = $1 AND at < $2", self._hall_id, moment
        )
        return int(result.split()[-1])

    async def approve(self, approval: Approval) -> None:
        await self._pool.execute(
            "INSERT INTO device_approvals"
            " (hall_id, device_id, kind, name, area, window_id, screen, approved_by)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (hall_id, device_id) DO UPDATE"
            " SET kind = excluded.kind, name = excluded.name, area = excluded.area,"
            " window_id = excluded.window_id, screen = excluded.screen,"
            " approved_by = excluded.approved_by, approved_at = now()",
            self._hall_id, approval.device_id, approval.kind, approval.name, approval.area,
            approval.window, approval.screen, approval.approved_by,
        )

    async def approvals(self) -> list[Approval]:
        rows = await self._pool.fetch(
            "SELECT * FROM device_approvals WHERE hall_id = $1 ORDER BY device_id", self._hall_id
        )
        return [
            Approval(r["device_id"], r["kind"], r["name"], r["area"], r["window_id"],
                     r["screen"], r["approved_by"])
            for r in rows
        ]

    async def rate(
        self, ticket_id: str, window_id: str, staff_id: str | None, rating: int,
        reasons: Sequence[str], device_id: str, at: datetime,
    ) -> bool:
        """Store a rating; False when that ticket was already rated at that window."""
        result: str = await self._pool.execute(
            "INSERT INTO evaluations"
            " (hall_id, ticket_id, window_id, staff_id, rating, reasons, device_id, at)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8) ON CONFLICT DO NOTHING",
            self._hall_id, ticket_id, window_id, staff_id, rating,
            json.dumps(list(reasons), ensure_ascii=False), device_id, at,
        )
        return result.endswith(" 1")

    async def evaluations(self, ticket_id: str) -> list[dict[str, Any]]:
        rows = await self._pool.fetch(
            "SELECT ticket_id, window_id, staff_id, rating, reasons, device_id, at"
            " FROM evaluations WHERE hall_id = $1 AND ticket_id = $2 ORDER BY id",
            self._hall_id,
            ticket_id,
        )
        return [{**row, "reasons": json.loads(row["reasons"])} for row in rows]
