"""Every transition is committed before anyone hears of it; a restarted hall
is the hall it was; a storage failure loses nothing that was acknowledged."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from hall.audit import AuditEntry
from hall.auth import Principal, Role
from hall.bus import EventBus
from hall.committer import CommitFailed
from hall.config import StrategyAssignment
from hall.eventstore import StoredEvent
from hall.runtime import HallRuntime, Unavailable
from queueing import Source, StrategySpec
from tests.engine_kit import OPENING
from tests.hall_kit import CONFIG, ManualClock, started


async def stored_seqs(pool: asyncpg.Pool) -> list[int]:
    rows = await pool.fetch("SELECT seq FROM hall_events ORDER BY seq")
    return [row["seq"] for row in rows]


async def test_an_acknowledged_operation_is_already_in_the_database(pool: asyncpg.Pool) -> None:
    runtime = await started(pool)
    await runtime.execute("login", "W1", "zhang")
    stored = await runtime.execute("issue", "biz", Source.WALK_IN)
    assert stored[-1].seq in await stored_seqs(pool)
    await runtime.stop()


async def test_sequence_numbers_are_gap_free_and_in_order(pool: asyncpg.Pool) -> None:
    runtime = await started(pool)
    await runtime.execute("login", "W1", "zhang")
    for _ in range(5):
        await runtime.execute("issue", "biz", Source.WALK_IN)
    seqs = await stored_seqs(pool)
    assert seqs == list(range(1, len(seqs) + 1))
    await runtime.stop()


async def test_concurrent_operations_share_commits(pool: asyncpg.Pool) -> None:
    runtime = await started(pool)
    await runtime.execute("login", "W1", "zhang")
    batches: list[int] = []
    runtime.committer.observe = lambda seconds, size: batches.append(size)
    await asyncio.gather(*(runtime.execute("issue", "biz", Source.WALK_IN) for _ in range(200)))
    assert sum(batches) == 200
    assert len(batches) < 20, f"200 operations took {len(batches)} commits"
    await runtime.stop()


async def test_events_are_published_only_after_they_are_stored(pool: asyncpg.Pool) -> None:
    runtime = await started(pool)
    seen: list[tuple[int, bool]] = []
    in_database: set[int] = set()

    def check(events: Any) -> None:
        for stored in events:
            seen.append((stored.seq, stored.seq in in_database))

    await runtime.execute("login", "W1", "zhang")
    in_database.update(await stored_seqs(pool))
    runtime.bus.subscribe(check)
    published = await runtime.execute("issue", "biz", Source.WALK_IN)
    in_database.update(await stored_seqs(pool))
    assert [seq for seq, _ in seen] == [s.seq for s in published]
    assert all(seq in in_database for seq, _ in seen)
    await runtime.stop()


async def test_a_restarted_hall_is_the_hall_it_was(pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    first = await started(pool, clock)
    await first.execute("login", "W1", "zhang")
    await first.execute("login", "W3", "wang")
    await first.execute("pause", "W3", "break")
    for _ in range(3):
        await first.execute("issue", "biz", Source.WALK_IN)
    await first.execute("call_next", "W1")
    await first.execute("close_window", "W4")
    before = first.engine.snapshot()
    await first.stop()
    second = await started(pool, clock)
    assert second.engine.snapshot() == before
    issued = await second.execute("issue", "biz", Source.WALK_IN)
    assert issued[0].event.number == "A004"  # type: ignore[attr-defined]
    await second.stop()


async def test_a_restart_on_a_later_day_rolls_over_and_keeps_history(pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    first = await started(pool, clock)
    await first.execute("login", "W1", "zhang")
    await first.execute("issue", "biz", Source.WALK_IN)
    await first.stop()
    clock.moment += timedelta(days=1)
    second = await started(pool, clock)
    assert second.engine.day == clock.moment.date()
    assert list(second.engine.tickets()) == []
    days = await pool.fetch("SELECT DISTINCT day FROM hall_events ORDER BY day")
    assert [row["day"] for row in days] == [OPENING.date(), clock.moment.date()]
    expired = await pool.fetchval("SELECT count(*) FROM hall_events WHERE type = 'ticket.expired'")
    assert expired == 1
    await second.stop()


async def test_a_failed_commit_acknowledges_nothing_and_the_hall_recovers(
    pool: asyncpg.Pool,
) -> None:
    runtime = await started(pool)
    await runtime.execute("login", "W1", "zhang")
    kept: list[StoredEvent] = await runtime.execute("issue", "biz", Source.WALK_IN)
    limit = await pool.fetchval("SELECT max(seq) FROM hall_events")
    await pool.execute(f"ALTER TABLE hall_events ADD CONSTRAINT full_up CHECK (seq <= {limit})")
    with pytest.raises(CommitFailed):
        await runtime.execute("issue", "biz", Source.WALK_IN)
    with pytest.raises(Unavailable):
        await runtime.execute("issue", "biz", Source.WALK_IN)
    await pool.execute("ALTER TABLE hall_events DROP CONSTRAINT full_up")
    for _ in range(100):
        if runtime.ready:
            break
        await asyncio.sleep(0.05)
    assert runtime.ready
    ticket = kept[0].event.ticket_id  # type: ignore[attr-defined]
    assert [t.id for t in runtime.engine.tickets()] == [ticket]
    again = await runtime.execute("issue", "biz", Source.WALK_IN)
    assert again[0].event.number == "A002"  # type: ignore[attr-defined]
    assert again[0].seq == limit + 1
    await runtime.stop()


async def test_the_running_hall_rolls_over_at_the_configured_hour(pool: asyncpg.Pool) -> None:
    clock = ManualClock()
    runtime = await started(pool, clock)
    await runtime.execute("login", "W1", "zhang")
    waiting = await runtime.execute("issue", "biz", Source.WALK_IN)
    clock.moment = (OPENING + timedelta(days=1)).replace(hour=2, minute=59)
    await runtime.tick()
    assert runtime.engine.day == OPENING.date()
    clock.moment = clock.moment.replace(hour=3, minute=0)
    stored = await runtime.tick()
    assert [s.event.type for s in stored][:2] == ["ticket.expired", "window.logged_out"]
    assert runtime.engine.day == clock.moment.date()
    await runtime.execute("login", "W1", "zhang")
    fresh = await runtime.execute("issue", "biz", Source.WALK_IN)
    assert fresh[0].event.number == "A001"  # type: ignore[attr-defined]
    history = await pool.fetchval(
        "SELECT count(*) FROM hall_events WHERE type = 'ticket.issued' AND day = $1",
        OPENING.date(),
    )
    assert history == 1 and waiting[0].day == OPENING.date()
    await runtime.stop()


async def test_a_day_starts_with_its_configured_strategies_in_one_commit(
    pool: asyncpg.Pool,
) -> None:
    config = replace(
        CONFIG,
        strategy_assignments=(
            StrategyAssignment("group", "front", StrategySpec.of("weighted")),
            StrategyAssignment("window", "W3", StrategySpec.of("service_priority")),
        ),
    )
    batches: list[int] = []
    runtime = HallRuntime(config, ManualClock(), EventBus(), pool)
    runtime.committer.observe = lambda seconds, size: batches.append(size)
    await runtime.start()
    types = await pool.fetch("SELECT type FROM hall_events ORDER BY seq")
    assert [row["type"] for row in types] == ["day.started"] + ["window.strategy_changed"] * 2
    assert batches == [3]
    await runtime.stop()


async def test_an_audit_record_is_stored_with_its_change_or_not_at_all(
    pool: asyncpg.Pool,
) -> None:
    runtime = await started(pool)
    clerk = Principal("zhang", Role.STAFF, "张伟", "10.1.2.3")
    await runtime.execute("login", "W1", "zhang", audit=AuditEntry(clerk, "window.login", "W1"))
    limit = await pool.fetchval("SELECT max(seq) FROM hall_events")
    await pool.execute(f"ALTER TABLE hall_events ADD CONSTRAINT full_up CHECK (seq <= {limit})")
    with pytest.raises(CommitFailed):
        await runtime.execute("pause", "W1", "break", audit=AuditEntry(clerk, "window.pause"))
    actions = await pool.fetch("SELECT action, remote FROM audit_log ORDER BY id")
    assert [(r["action"], r["remote"]) for r in actions] == [("window.login", "10.1.2.3")]
    await pool.execute("ALTER TABLE hall_events DROP CONSTRAINT full_up")
    await runtime.stop()
