"""The statistics tables in PostgreSQL (hall/migrations/0007_statistics.sql):
reading a day's events and ratings, writing its facts and rollups in one
transaction, and the queries the reports run."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal

import asyncpg

from hall.eventstore import StoredEvent
from hall.stats_facts import FACT_COLUMNS, FACT_EVENT_TYPES, Fact
from hall.stats_tables import BUCKET_EDGES, COUNTERS, Table, from_rollups
from queueing import event_from_dict

Dim = Literal["hall", "source", "area", "service", "window", "staff"]
DIMS: tuple[Dim, ...] = ("hall", "source", "area", "service", "window", "staff")
_MONTH_LOCK = 0x5354  # "ST": with the month, the advisory lock of a month's sums

FACT_KEY_COLUMN: dict[Dim, str] = {
    "hall": "''", "source": "source", "area": "area_id", "service": "service_id",
    "window": "window_id", "staff": "staff_id",
}
"""The ``ticket_facts`` column each dimension groups by."""

ROLLUP_COLUMNS = ("hall_id", "dim", "day", "key", *COUNTERS, "wait_p90", "service_p90",
                  "wait_hist", "service_hist")
MONTH_COLUMNS = tuple("month" if c == "day" else c for c in ROLLUP_COLUMNS)

_SUMS = ", ".join(f"sum({name})::bigint" for name in COUNTERS)
_PLAIN = ", ".join(COUNTERS)
_FROM_FACTS = """count(*),
    count(*) FILTER (WHERE outcome = 'finished'),
    count(*) FILTER (WHERE outcome = 'abandoned'),
    count(*) FILTER (WHERE skips > 0),
    coalesce(sum(transfers), 0)::bigint,
    count(*) FILTER (WHERE outcome = 'cancelled'),
    count(*) FILTER (WHERE outcome = 'expired'),
    count(wait_s), coalesce(sum(wait_s), 0)::bigint,
    count(service_s), coalesce(sum(service_s), 0)::bigint,
    count(rating), coalesce(sum(rating), 0)::bigint,
    count(*) FILTER (WHERE rating <= 2),
    string_agg(set_byte('\\x00'::bytea, 0, width_bucket(wait_s, $4::int[])), ''::bytea),
    string_agg(set_byte('\\x00'::bytea, 0, width_bucket(service_s, $4::int[])), ''::bytea)"""
"""The ``COUNTERS`` of raw facts, then each ticket's wait and service bucket as one byte."""


async def day_events(pool: asyncpg.Pool, hall_id: str, day: date) -> list[StoredEvent]:
    """The day's events that facts are made of, in order."""
    rows = await pool.fetch(
        "SELECT seq, data FROM hall_events WHERE hall_id = $1 AND day = $2"
        " AND type = ANY($3::text[]) ORDER BY seq",
        hall_id, day, list(FACT_EVENT_TYPES),
    )
    return [StoredEvent(row["seq"], hall_id, day, event_from_dict(json.loads(row["data"])))
            for row in rows]


async def last_seq_of(pool: asyncpg.Pool, hall_id: str, day: date) -> int:
    value = await pool.fetchval(
        "SELECT coalesce(max(seq), 0) FROM hall_events WHERE hall_id = $1 AND day = $2",
        hall_id, day)
    return int(value)


async def ratings_of(pool: asyncpg.Pool, hall_id: str, ticket_ids: Sequence[str]
                     ) -> dict[str, int]:
    """Each ticket's latest rating."""
    rows = await pool.fetch(
        "SELECT DISTINCT ON (ticket_id) ticket_id, rating FROM evaluations"
        " WHERE hall_id = $1 AND ticket_id = ANY($2::text[]) ORDER BY ticket_id, at DESC, id DESC",
        hall_id, list(ticket_ids))
    return {row["ticket_id"]: row["rating"] for row in rows}


async def ratings_since(pool: asyncpg.Pool, hall_id: str, since: datetime) -> dict[str, int]:
    """Each ticket's latest rating among those given since ``since`` (today's)."""
    rows = await pool.fetch(
        "SELECT DISTINCT ON (ticket_id) ticket_id, rating FROM evaluations"
        " WHERE hall_id = $1 AND at >= $2 ORDER BY ticket_id, at DESC, id DESC",
        hall_id, since)
    return {row["ticket_id"]: row["rating"] for row in rows}


def rollup_records(hall_id: str, day: date, table: Table, dim: Dim | None = None
                   ) -> list[tuple[Any, ...]]:
    """Rows for ``daily_rollups`` (or ``monthly_rollups``, ``day`` the month's
    first): the label's key is the row's key, and its period the dimension
    when ``dim`` is None."""
    wait_p90, service_p90 = table.p90s()
    records = []
    for row, (period, key) in enumerate(table.labels):
        wait, service = table.hist_bytes(row)
        records.append((hall_id, dim or period, day, key, *table.counts[row].tolist(),
                        _seconds(wait_p90[row]), _seconds(service_p90[row]), wait, service))
    return records


def _seconds(value: float) -> int | None:
    return None if math.isnan(value) else int(value)


async def write_day(
    pool: asyncpg.Pool, hall_id: str, day: date, facts: Sequence[Fact] | None,
    rollups: Sequence[tuple[Any, ...]], last_seq: int,
) -> None:
    """Replace the day's facts (unless None: only the rollups are rebuilt) and
    rollups, sum its month again, and mark the day rolled up, all at once: a
    report sees the old day or the new one, never half of each. Days of one
    month are written one at a time (an advisory lock), so each month sum
    sees every day written before it."""
    month = day.replace(day=1)
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", _MONTH_LOCK,
                                 f"{hall_id}:{month}")
        if facts is not None:
            await connection.execute(
                "DELETE FROM ticket_facts WHERE hall_id = $1 AND day = $2", hall_id, day)
            await connection.copy_records_to_table(
                "ticket_facts", records=[f.row(hall_id) for f in facts], columns=FACT_COLUMNS)
        await connection.execute(
            "DELETE FROM daily_rollups WHERE hall_id = $1 AND day = $2", hall_id, day)
        await connection.copy_records_to_table(
            "daily_rollups", records=rollups, columns=ROLLUP_COLUMNS)
        await _sum_month(connection, hall_id, month)
        tickets = len(facts) if facts is not None else await _fact_count(connection, hall_id, day)
        await connection.execute(
            "INSERT INTO stats_days (hall_id, day, tickets, last_seq) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (hall_id, day) DO UPDATE SET tickets = EXCLUDED.tickets,"
            " last_seq = EXCLUDED.last_seq, rolled_at = now()",
            hall_id, day, tickets, last_seq)


async def _sum_month(connection: asyncpg.Connection, hall_id: str, month: date) -> None:
    rows = await connection.fetch(
        f"SELECT dim, key, {_SUMS}, string_agg(wait_hist, ''::bytea),"
        " string_agg(service_hist, ''::bytea) FROM daily_rollups"
        " WHERE hall_id = $1 AND day >= $2 AND day < $3 GROUP BY dim, key",
        hall_id, month, next_month(month))
    table = from_rollups([(r[0], r[1]) for r in rows], rows, 2)
    await connection.execute(
        "DELETE FROM monthly_rollups WHERE hall_id = $1 AND month = $2", hall_id, month)
    await connection.copy_records_to_table(
        "monthly_rollups", records=rollup_records(hall_id, month, table), columns=MONTH_COLUMNS)


def next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


async def _fact_count(connection: asyncpg.Connection, hall_id: str, day: date) -> int:
    value = await connection.fetchval(
        "SELECT count(*) FROM ticket_facts WHERE hall_id = $1 AND day = $2", hall_id, day)
    return int(value)


async def fact_records(pool: asyncpg.Pool, hall_id: str, day: date) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT source, service_id, area_id, window_id, staff_id, outcome, wait_s, service_s,"
        " skips, transfers, rating FROM ticket_facts WHERE hall_id = $1 AND day = $2",
        hall_id, day)
    return rows


async def days_to_roll(pool: asyncpg.Pool, hall_id: str, before: date) -> list[date]:
    """Business days before ``before`` that were opened and are not rolled up."""
    rows = await pool.fetch(
        "SELECT DISTINCT day FROM hall_events WHERE hall_id = $1 AND type = 'day.started'"
        " AND day < $2 AND day NOT IN (SELECT day FROM stats_days WHERE hall_id = $1)"
        " ORDER BY day",
        hall_id, before)
    return [row["day"] for row in rows]


async def opened_days(pool: asyncpg.Pool, hall_id: str, first: date, last: date) -> list[date]:
    rows = await pool.fetch(
        "SELECT DISTINCT day FROM hall_events WHERE hall_id = $1 AND type = 'day.started'"
        " AND day BETWEEN $2 AND $3 ORDER BY day",
        hall_id, first, last)
    return [row["day"] for row in rows]


async def rolled_days(pool: asyncpg.Pool, hall_id: str, first: date, last: date) -> set[date]:
    rows = await pool.fetch(
        "SELECT day FROM stats_days WHERE hall_id = $1 AND day BETWEEN $2 AND $3",
        hall_id, first, last)
    return {row["day"] for row in rows}


async def daily_rows(pool: asyncpg.Pool, hall_id: str, dim: Dim, first: date, last: date
                     ) -> list[asyncpg.Record]:
    """Rollup rows per (day, key): counters, then the day's p90s (no histograms)."""
    rows: list[asyncpg.Record] = await pool.fetch(
        f"SELECT day, key, {_PLAIN}, wait_p90, service_p90 FROM daily_rollups"
        " WHERE hall_id = $1 AND dim = $2 AND day BETWEEN $3 AND $4"
        ' ORDER BY day, key COLLATE "C"',
        hall_id, dim, first, last)
    return rows


async def days_by_month(pool: asyncpg.Pool, hall_id: str, dim: Dim, first: date, last: date
                        ) -> list[asyncpg.Record]:
    """Daily rollups of part of a month summed per (month, key): counters, then
    the stored histograms of its days one after another."""
    rows: list[asyncpg.Record] = await pool.fetch(
        f"SELECT date_trunc('month', day)::date, key, {_SUMS},"
        " string_agg(wait_hist, ''::bytea), string_agg(service_hist, ''::bytea)"
        " FROM daily_rollups WHERE hall_id = $1 AND dim = $2 AND day BETWEEN $3 AND $4"
        ' GROUP BY 1, 2 ORDER BY 1, key COLLATE "C"',
        hall_id, dim, first, last)
    return rows


async def month_rows(pool: asyncpg.Pool, hall_id: str, dim: Dim, first: date, last: date
                     ) -> list[asyncpg.Record]:
    """Monthly rollups of the months from ``first`` to ``last`` (their first days)."""
    rows: list[asyncpg.Record] = await pool.fetch(
        f"SELECT month, key, {_PLAIN}, wait_hist, service_hist FROM monthly_rollups"
        " WHERE hall_id = $1 AND dim = $2 AND month BETWEEN $3 AND $4"
        ' ORDER BY month, key COLLATE "C"',
        hall_id, dim, first, last)
    return rows


async def hourly_rows(pool: asyncpg.Pool, hall_id: str, dim: Dim, first: date, last: date
                      ) -> list[asyncpg.Record]:
    """Per (day, hour, key) from the raw facts: counters, then one byte per
    ticket with its wait bucket and one with its service bucket."""
    sql = (f"SELECT day, hour, {FACT_KEY_COLUMN[dim]} AS key, {_FROM_FACTS}"
           " FROM ticket_facts WHERE hall_id = $1 AND day BETWEEN $2 AND $3"
           f' GROUP BY 1, 2, 3 ORDER BY 1, 2, {FACT_KEY_COLUMN[dim]} COLLATE "C"')
    rows: list[asyncpg.Record] = await pool.fetch(sql, hall_id, first, last, list(BUCKET_EDGES))
    return rows


async def staff_names(pool: asyncpg.Pool) -> dict[str, str]:
    rows = await pool.fetch("SELECT id, name FROM staff")
    return {row["id"]: row["name"] for row in rows}
