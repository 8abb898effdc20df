"""The audit trail (G3): who did what, when and from where."""

from __future__ import annotations

import asyncpg

from hall.audit import AuditLog
from hall.auth import Principal, Role

MANAGER = Principal("liuyang", Role.MANAGER, "刘洋", "10.20.0.7")


async def test_a_record_holds_who_what_when_and_from_where(pool: asyncpg.Pool) -> None:
    audit = AuditLog(pool, "jiangyang")
    before = await pool.fetchval("SELECT now()")
    await audit.record(MANAGER, "window.pause", "w12a", {"reason": "meal", "备注": "午休"})
    after = await pool.fetchval("SELECT now()")
    [entry] = await audit.recent()
    assert (entry["actor"], entry["role"]) == ("liuyang", "manager")
    assert (entry["action"], entry["target"]) == ("window.pause", "w12a")
    assert entry["detail"] == {"reason": "meal", "备注": "午休"}
    assert before <= entry["at"] <= after
    assert entry["remote"] == "10.20.0.7"


async def test_a_record_needs_neither_target_nor_detail_nor_address(pool: asyncpg.Pool) -> None:
    audit = AuditLog(pool, "jiangyang")
    await audit.record(Principal("approval-backend", Role.BACKEND, "backend"), "catalog.sync")
    [entry] = await audit.recent()
    assert (entry["target"], entry["detail"], entry["remote"]) == (None, {}, None)


async def test_recent_gives_this_halls_latest_records_first(pool: asyncpg.Pool) -> None:
    audit = AuditLog(pool, "jiangyang")
    for number in range(3):
        await audit.record(MANAGER, "config.change", f"item-{number}")
    await AuditLog(pool, "another-hall").record(MANAGER, "config.change", "elsewhere")
    assert [entry["target"] for entry in await audit.recent(limit=2)] == ["item-2", "item-1"]
