"""Statistics (Q13): per-ticket facts and daily rollups, kept from the event log.

Why a day is rolled up from the log once it is over, not written fact by fact
as events come in: the log is the one truth, so a rollup made from it is exact
by construction, and the very same code rebuilds any day later (a fixed bug,
a window moved to another area) with identical results. Incremental writes
would have to survive every crash between a commit and their own write, and a
rebuild would still need this code. The rollover is the moment: when
``day.started`` of a new day is committed (``HallRuntime.open_day``), every
event of the day before is durable, so the subscriber on the bus rolls up the
days that are over and not rolled up yet (after a restart too, in order).

Today, which no rollup holds yet, is folded live from the same bus with the
same fold (``FactFold``), seeded from the stored events at start, so today's
figures come from memory in milliseconds and agree with what the rollover
will write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg

from hall import stats_store as store
from hall.eventstore import StoredEvent
from hall.runtime import HallRuntime
from hall.stats_facts import Fact, FactFold
from hall.stats_report import By, LiveFacts, Report, build_report
from hall.stats_store import DIMS, Dim
from hall.stats_tables import Columns, columns, columns_of_records, tabulate
from queueing import Layout
from queueing.events import DayStarted

log = logging.getLogger(__name__)

RECORD_KEY: dict[Dim, str] = {
    "source": "source", "area": "area_id", "service": "service_id", "window": "window_id",
    "staff": "staff_id",
}


def fact_keys(facts: Sequence[Fact]) -> dict[Dim, list[str]]:
    return {
        "hall": [""] * len(facts),
        "source": [f.source for f in facts],
        "area": [f.area for f in facts],
        "service": [f.service for f in facts],
        "window": [f.window for f in facts],
        "staff": [f.staff for f in facts],
    }


def rollups_of(hall_id: str, day: date, cols: Columns, keys: dict[Dim, list[str]]
               ) -> list[tuple[Any, ...]]:
    """The day's rollup rows, every dimension."""
    text = day.isoformat()
    records: list[tuple[Any, ...]] = []
    for dim in DIMS:
        table = tabulate(cols, [(text, key) for key in keys[dim]])
        records += store.rollup_records(hall_id, day, table, dim)
    return records


async def fold_day(pool: asyncpg.Pool, layout: Layout, day: date) -> FactFold:
    """The day's facts from the log, with their ratings."""
    fold = FactFold(layout, day)
    fold.apply_all(await store.day_events(pool, layout.hall_id, day))
    fold.rate(await store.ratings_of(pool, layout.hall_id, list(fold.facts)))
    return fold


async def roll_up_day(pool: asyncpg.Pool, layout: Layout, day: date) -> int:
    """Make (or remake) a finished day's facts and rollups from the log; returns
    its tickets."""
    fold = await fold_day(pool, layout, day)
    facts = list(fold.facts.values())
    rollups = rollups_of(layout.hall_id, day, columns(facts), fact_keys(facts))
    await store.write_day(pool, layout.hall_id, day, facts, rollups, fold.last_seq)
    return len(facts)


async def roll_up_from_facts(pool: asyncpg.Pool, hall_id: str, day: date) -> int:
    """Remake a day's rollups from its stored facts alone (history imported as
    facts, or rollups lost); returns its tickets."""
    records = await store.fact_records(pool, hall_id, day)
    keys: dict[Dim, list[str]] = {"hall": [""] * len(records)}
    for dim, column in RECORD_KEY.items():
        keys[dim] = [r[column] for r in records]
    rollups = rollups_of(hall_id, day, columns_of_records(records), keys)
    last = await store.last_seq_of(pool, hall_id, day)
    await store.write_day(pool, hall_id, day, None, rollups, last)
    return len(records)


@dataclass(frozen=True, slots=True)
class Rebuilt:
    day: date
    tickets: int


class Statistics:
    """The hall's statistics: today live, the days before from their rollups."""

    def __init__(self, runtime: HallRuntime, pool: asyncpg.Pool) -> None:
        self.runtime = runtime
        self.pool = pool
        self.layout = runtime.config.layout
        self.hall_id = self.layout.hall_id
        self.live: FactFold | None = None
        self.live_started: datetime | None = None
        self._last_seq = 0
        self._seeded = False
        self._early: list[StoredEvent] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._unsubscribe = runtime.bus.subscribe(self._on_events)

    async def start(self) -> None:
        """Seed today from the log, then roll up whatever finished day is not yet."""
        stored = await self.runtime.store.load_current_day()
        early, self._early = self._early, []
        for item in [*stored, *early]:
            self._take(item)
        self._seeded = True
        self._roll_soon()

    async def stop(self) -> None:
        self._unsubscribe()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def settled(self) -> None:
        """Wait until no rollup is running or due (tests, and a clean stop)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    def _on_events(self, events: Sequence[StoredEvent]) -> None:
        if not self._seeded:
            self._early.extend(events)
            return
        for item in events:
            if self._take(item):
                self._roll_soon()

    def _take(self, item: StoredEvent) -> bool:
        """Apply one event to the live day; True when it started a new day."""
        if item.seq <= self._last_seq:
            return False
        self._last_seq = item.seq
        if isinstance(item.event, DayStarted):
            self.live = FactFold(self.layout, item.event.day)
            self.live_started = item.event.at
            return True
        if self.live is not None:
            self.live.apply(item)
        return False

    def _roll_soon(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._roll_pending(), name="stats-rollup")

    async def _roll_pending(self) -> None:
        while True:
            self._again = False
            try:
                await self.catch_up()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.error("statistics: rollup failed (%s); tried again at the next day or start",
                          exc)
                return
            if not self._again:
                return

    async def catch_up(self) -> list[Rebuilt]:
        """Roll up every opened day before today that is not rolled up."""
        today = self.live.day if self.live is not None else self.runtime.engine.day
        if today is None:
            return []
        done = []
        async with self._lock:
            for day in await store.days_to_roll(self.pool, self.hall_id, today):
                done.append(await self._roll(day))
        return done

    async def rebuild(self, first: date, last: date) -> list[Rebuilt]:
        """Remake the facts and rollups of the opened days in [first, last] from
        the log; days without events are left as they are."""
        async with self._lock:
            days = await store.opened_days(self.pool, self.hall_id, first, last)
            return [await self._roll(day) for day in days]

    async def _roll(self, day: date) -> Rebuilt:
        started = time.perf_counter()
        tickets = await roll_up_day(self.pool, self.layout, day)
        log.info("statistics: %s rolled up, %d tickets in %.2f s", day, tickets,
                 time.perf_counter() - started)
        return Rebuilt(day, tickets)

    @property
    def today(self) -> date | None:
        return self.live.day if self.live is not None else None

    async def live_facts(self) -> LiveFacts | None:
        """Today's facts with the ratings given so far."""
        live, since = self.live, self.live_started
        if live is None or since is None:
            return None
        live.rate(await store.ratings_since(self.pool, self.hall_id, since - timedelta(hours=1)))
        return LiveFacts(live.day, list(live.facts.values()))

    async def report(self, first: date, last: date, by: By, dim: Dim) -> Report:
        live = None
        if self.today is not None and first <= self.today <= last:
            live = await self.live_facts()
        return await build_report(self.pool, self.layout, first, last, by, dim, live)
