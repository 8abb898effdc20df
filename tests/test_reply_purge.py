"""Devices' kept replies go at the daily rollover once two days old (real PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from hall.runtime import KEEP_DEVICE_REPLIES
from tests.engine_kit import OPENING
from tests.hall_kit import ManualClock, started


async def keep(pool: asyncpg.Pool, request_id: str, at: datetime) -> None:
    await pool.execute(
        "INSERT INTO device_replies (hall_id, device_id, request_id, reply, at)"
        " VALUES ('test', 'kiosk-1', $1, '{}'::jsonb, $2)", request_id, at)


async def kept(pool: asyncpg.Pool) -> list[str]:
    rows = await pool.fetch("SELECT request_id FROM device_replies ORDER BY request_id")
    return [row["request_id"] for row in rows]


async def test_the_rollover_forgets_replies_older_than_two_days(pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    runtime = await started(pool, clock)
    rollover = (OPENING + timedelta(days=1)).replace(hour=3, minute=30)
    await keep(pool, "old-0000001", rollover - KEEP_DEVICE_REPLIES - timedelta(minutes=1))
    await keep(pool, "new-0000001", rollover - KEEP_DEVICE_REPLIES + timedelta(minutes=1))
    clock.moment = rollover
    await runtime.tick()
    await runtime.stop()
    assert await kept(pool) == ["new-0000001"]


async def test_no_rollover_no_purge(pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    runtime = await started(pool, clock)
    await keep(pool, "old-0000001", OPENING - timedelta(days=30))
    clock.moment = OPENING + timedelta(hours=5)
    await runtime.tick()
    await runtime.stop()
    assert await kept(pool) == ["old-0000001"]


async def test_a_hall_that_starts_on_a_new_day_purges_too(pool: asyncpg.Pool) -> None:
    runtime = await started(pool, ManualClock())
    await runtime.stop()
    await keep(pool, "old-0000001", OPENING - timedelta(days=3))
    later = await started(pool, ManualClock(OPENING + timedelta(days=1)))
    await later.stop()
    assert await kept(pool) == []
