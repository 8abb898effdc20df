"""Statistics report times over a year of generated history (Q13).

The issue's requirement: a year of history with at least 5 million tickets,
every report type timed, under 200 ms for any one report.

How it measures, and why:

* The database is found as the tests find it (see bench/api.py: the
  ``HALL_BENCH_DATABASE_URL`` / ``HALL_TEST_DATABASE_URL`` server, else the
  local one on 127.0.0.1:5432, else an embedded pgserver); a throwaway database
  is made and migrated there and dropped at the end.
* History is 2025-01-06 .. 2026-01-04 in the demo hall's layout (63 services,
  42 windows, 6 areas) with 84 clerks, two per window. Open Monday to Friday
  except public holidays; Mondays busiest; more in March and December; the
  day's arrivals peak at 9-11 and 14-16. Services by a Zipf-like popularity,
  each served at the windows the layout gives it; sources ~45% walk-in, 25% ID
  card, 15% appointment, 8% mobile, 5% phone, 2% priority; ~90% served, the
  rest no-shows, cancelled or expired; waits log-normal, service times gamma
  around each service's configured average; about half the served tickets rated.
  5.2 million tickets over 241 open days is ~21,600 a day: far more than 42
  real windows serve, which only matters for the hourly reports (they read
  raw facts, ~100,000 rows a week); the daily and monthly ones cost days x keys.
* The history goes into ``ticket_facts`` with COPY (``copy_records_to_table``),
  then the rollups are built from those facts day by day with the server's own
  code (``hall.stats.roll_up_from_facts``), and the tables are ANALYZEd.
* Today (2026-01-05) is a day of the same volume run through the real engine
  (service times compressed so 42 windows get through it), folded live with
  the server's fold, its ratings in ``evaluations``: every report over the year
  includes it, as a manager's would. Its rollover (fold from the stored log,
  facts, rollups) is timed at the end.
* A report's time is what the endpoint does minus HTTP: ``build_report`` (the
  queries, the arithmetic, today's ratings) and the JSON or CSV body, in this
  process, median of several runs after one warm-up run.

Run ``python bench/stats.py`` (a few minutes) or ``--quick`` (300,000 tickets,
under 30 s). The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import heapq  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Awaitable, Callable, Sequence  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from datetime import date, datetime, timedelta  # noqa: E402
from datetime import time as clock_time  # noqa: E402
from typing import Any  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

import asyncpg  # noqa: E402
import msgspec  # noqa: E402
import numpy as np  # noqa: E402

from bench.api import create_database, drop_throwaway_database, find_server  # noqa: E402
from hall.config import load_hall_config  # noqa: E402
from hall.eventstore import EVENTS, StoredEvent, event_row  # noqa: E402
from hall.pg import Database  # noqa: E402
from hall.stats import roll_up_day, roll_up_from_facts  # noqa: E402
from hall.stats_facts import FACT_COLUMNS, FactFold  # noqa: E402
from hall.stats_report import By, LiveFacts, build_report  # noqa: E402
from hall.stats_routes import report_csv, report_json  # noqa: E402
from hall.stats_store import DIMS, Dim, ratings_since  # noqa: E402
from queueing import Engine, Layout, Rejected, Source  # noqa: E402

DEMO_CONFIG = ROOT / "config" / "demo-hall.toml"
TZ = ZoneInfo("Asia/Shanghai")
FIRST_DAY = date(2025, 1, 6)
LIVE_DAY = date(2026, 1, 5)
GOAL_MS = 200.0
HOLIDAYS = {
    date(2025, 1, 1), *(date(2025, 1, 28) + timedelta(days=i) for i in range(8)),
    date(2025, 4, 4), *(date(2025, 5, 1) + timedelta(days=i) for i in range(5)),
    date(2025, 6, 2), *(date(2025, 10, 1) + timedelta(days=i) for i in range(8)),
    date(2026, 1, 1), date(2026, 1, 2),
}
SOURCES = np.array([s.value for s in (Source.WALK_IN, Source.ID_CARD, Source.APPOINTMENT,
                                      Source.MOBILE, Source.PHONE, Source.PRIORITY)])
SOURCE_P = np.array([0.45, 0.25, 0.15, 0.08, 0.05, 0.02])
OUTCOMES = np.array(["finished", "abandoned", "cancelled", "expired"])
OUTCOME_P = np.array([0.905, 0.035, 0.035, 0.025])
RATING_P = np.array([0.02, 0.03, 0.05, 0.18, 0.72])
# Arrival segments of the day (start, end in minutes after midnight) and their weights.
SEGMENTS = np.array([(540, 600), (600, 660), (660, 720), (810, 840), (840, 900), (900, 960),
                     (960, 1020), (1020, 1050)])
SEGMENT_W = np.array([1.3, 1.5, 1.0, 0.3, 1.2, 1.1, 0.8, 0.25]) * (SEGMENTS[:, 1] - SEGMENTS[:, 0])
SEGMENT_P = SEGMENT_W / SEGMENT_W.sum()
WEEKDAY_W = (1.25, 1.05, 1.0, 1.0, 0.9)
MONTH_W = (0.9, 0.85, 1.15, 1.0, 0.95, 1.05, 1.0, 0.95, 1.0, 0.9, 1.05, 1.2)


@dataclass(frozen=True, slots=True)
class Settings:
    tickets: int
    runs: int


FULL = Settings(tickets=5_200_000, runs=5)
QUICK = Settings(tickets=300_000, runs=3)
Say = Callable[[str], None]


# ---------------------------------------------------------------- history


def open_days(first: date, last: date) -> list[date]:
    days, day = [], first
    while day <= last:
        if day.weekday() < 5 and day not in HOLIDAYS:
            days.append(day)
        day += timedelta(days=1)
    return days


class Hall:
    """The demo layout as the generator needs it: arrays to draw from."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.services = list(layout.services)
        ranks = np.arange(1, len(self.services) + 1)
        weights = ranks ** -0.9
        self.service_p = weights / weights.sum()
        self.service_minutes = np.array([s.avg_service_minutes for s in layout.services.values()])
        self.windows = list(layout.windows)
        self.area_of = np.array([layout.windows[w].area for w in self.windows])
        self.windows_of = [
            np.array([i for i, w in enumerate(self.windows)
                      if service in layout.windows[w].services] or [0])
            for service in self.services
        ]
        self.staff = np.array([f"s{i + 1:03d}" for i in range(2 * len(self.windows))])

    def staff_of(self, window: str) -> str:
        return str(self.staff[2 * self.windows.index(window)])


def day_volumes(days: Sequence[date], total: int, rng: np.random.Generator) -> list[int]:
    weights = np.array([WEEKDAY_W[d.weekday()] * MONTH_W[d.month - 1] for d in days])
    weights *= rng.normal(1.0, 0.08, len(days)).clip(0.6, 1.4)
    counts = np.floor(weights / weights.sum() * total).astype(np.int64)
    counts[: total - int(counts.sum())] += 1
    return [int(c) for c in counts]


def day_records(hall: Hall, day: date, count: int, rng: np.random.Generator
                ) -> list[tuple[Any, ...]]:
    """One day's ticket facts, as the rows COPY takes."""
    segment = rng.choice(len(SEGMENTS), count, p=SEGMENT_P)
    start, end = SEGMENTS[segment, 0], SEGMENTS[segment, 1]
    seconds = np.sort((start * 60 + rng.random(count) * (end - start) * 60).astype(np.int64))
    service = rng.choice(len(hall.services), count, p=hall.service_p)
    source = rng.choice(SOURCES, count, p=SOURCE_P)
    outcome = rng.choice(OUTCOMES, count, p=OUTCOME_P)
    called = (outcome == "finished") | (outcome == "abandoned")
    window = np.zeros(count, np.int64)
    for index, choices in enumerate(hall.windows_of):
        picked = service == index
        window[picked] = rng.choice(choices, int(picked.sum()))
    relief = rng.random(count) < 0.2
    staff = hall.staff[2 * window + relief]
    busy = 1.0 + 0.5 * np.sin((seconds / 3600.0 - 9.0) / 8.0 * np.pi)
    wait = np.minimum(rng.lognormal(np.log(540.0 * busy), 0.75), 6 * 3600).astype(np.int64)
    minutes = hall.service_minutes[service]
    service_s = rng.gamma(2.0, minutes * 30.0).astype(np.int64) + 30
    skips = np.where(outcome == "abandoned", 2, (rng.random(count) < 0.03).astype(np.int64))
    transfers = ((rng.random(count) < 0.03) & (outcome == "finished")).astype(np.int64)
    rated = (rng.random(count) < 0.55) & (outcome == "finished")
    rating = rng.choice(np.arange(1, 6), count, p=RATING_P)
    midnight = datetime(day.year, day.month, day.day, tzinfo=TZ)
    text = f"{day:%Y%m%d}"
    area, window_id = hall.area_of[window], np.array(hall.windows)[window]
    rows = []
    for i, (sec, src, svc, out, call, w, a, st, wt, sv, sk, tr, rt, rate) in enumerate(zip(
            seconds.tolist(), source.tolist(), service.tolist(), outcome.tolist(),
            called.tolist(), window_id.tolist(), area.tolist(), staff.tolist(), wait.tolist(),
            service_s.tolist(), skips.tolist(), transfers.tolist(), rated.tolist(),
            rating.tolist(), strict=True)):
        rows.append((
            "bench", day, f"{text}-T{i:05d}", midnight + timedelta(seconds=sec), sec // 3600,
            src, hall.services[svc], a if call else "", w if call else "", st if call else "",
            out, wt if call else None, sv if out == "finished" else None, sk, tr,
            rate if rt else None,
        ))
    return rows


async def load_history(pool: asyncpg.Pool, hall: Hall, days: Sequence[date], total: int,
                       rng: np.random.Generator, say: Say) -> tuple[float, float]:
    """(seconds to generate, seconds to COPY)."""
    generating = copying = 0.0
    volumes = day_volumes(days, total, rng)
    async with pool.acquire() as connection:
        for number, (day, count) in enumerate(zip(days, volumes, strict=True), 1):
            started = time.perf_counter()
            rows = day_records(hall, day, count, rng)
            generating += time.perf_counter() - started
            started = time.perf_counter()
            await connection.copy_records_to_table("ticket_facts", records=rows,
                                                   columns=FACT_COLUMNS)
            copying += time.perf_counter() - started
            if number % 50 == 0:
                say(f"  {number}/{len(days)} days loaded")
    return generating, copying


async def build_rollups(pool: asyncpg.Pool, days: Sequence[date]) -> float:
    started = time.perf_counter()
    gate = asyncio.Semaphore(3)

    async def one(day: date) -> None:
        async with gate:
            await roll_up_from_facts(pool, "bench", day)

    await asyncio.gather(*(one(day) for day in days))
    return time.perf_counter() - started


# ---------------------------------------------------------------- today, through the engine


def simulate_day(hall: Hall, day: date, count: int, rng: np.random.Generator
                 ) -> list[StoredEvent]:
    """A day of ``count`` arrivals through the engine, window by window."""
    layout = hall.layout
    engine = Engine(layout)
    stored: list[StoredEvent] = []

    def keep(events: Sequence[Any]) -> None:
        for event in events:
            stored.append(StoredEvent(len(stored) + 1, layout.hall_id, day, event))

    opening = datetime.combine(day, clock_time(8, 30), TZ)
    keep(engine.start_day(day, now=opening))
    for window in hall.windows:
        keep(engine.login(window, hall.staff_of(window), now=opening))
    capacity = len(hall.windows) * 8.5 * 3600 / max(count, 1)
    segment = rng.choice(len(SEGMENTS), count, p=SEGMENT_P)
    start, end = SEGMENTS[segment, 0], SEGMENTS[segment, 1]
    arrivals = np.sort(start * 60 + rng.random(count) * (end - start) * 60)
    services = rng.choice(len(hall.services), count, p=hall.service_p)
    sources = rng.choice(SOURCES, count, p=SOURCE_P)
    queue: list[tuple[float, int, str, Any]] = []
    for i, moment in enumerate(arrivals.tolist()):
        queue.append((moment, 1, "arrive", (int(services[i]), str(sources[i]))))
    for window in hall.windows:
        queue.append((540 * 60.0, 2, "free", window))
    heapq.heapify(queue)
    idle: set[str] = set()
    serves = {w: set(layout.windows[w].services) for w in hall.windows}
    while queue:
        moment, _, kind, payload = heapq.heappop(queue)
        now = datetime.combine(day, clock_time(0), TZ) + timedelta(seconds=moment)
        try:
            if kind == "arrive":
                service_index, source = payload
                service = hall.services[service_index]
                slot = now if source == Source.APPOINTMENT.value else None
                keep(engine.issue(service, Source(source), now=now, appointment_slot=slot))
                for window in [w for w in idle if service in serves[w]][:1]:
                    idle.discard(window)
                    heapq.heappush(queue, (moment, 2, "free", window))
            elif kind == "free":
                keep(engine.call_next(payload, now=now))
                if rng.random() < 0.04:
                    heapq.heappush(queue, (moment + 60, 3, "skip", payload))
                else:
                    heapq.heappush(queue, (moment + 20, 3, "start", payload))
            elif kind == "start":
                keep(engine.start(payload, now=now))
                length = float(rng.gamma(2.0, capacity / 2.0))
                heapq.heappush(queue, (moment + length, 3, "finish", payload))
            else:
                keep(engine.skip(payload, now=now) if kind == "skip"
                     else engine.finish(payload, now=now))
                heapq.heappush(queue, (moment + 5, 2, "free", payload))
        except Rejected:
            if kind == "free":
                idle.add(payload)
    return stored


async def store_live_day(pool: asyncpg.Pool, layout: Layout, stored: Sequence[StoredEvent],
                         rng: np.random.Generator) -> FactFold:
    """The day's events in the log and half its served tickets rated; the fold of it."""
    rows = [event_row(s) for s in stored]
    columns = ("hall_id", *(name for name, _ in EVENTS.columns))
    await pool.copy_records_to_table("hall_events", records=[("bench", *r) for r in rows],
                                     columns=columns)
    fold = FactFold(layout, LIVE_DAY)
    fold.apply_all(stored)
    ratings = []
    for fact in fold.facts.values():
        if fact.outcome == "finished" and rng.random() < 0.55:
            rating = int(rng.choice(np.arange(1, 6), p=RATING_P))
            ratings.append(("bench", fact.ticket_id, fact.window, fact.staff, rating, "[]",
                            "eval-" + fact.window, fact.issued_at + timedelta(hours=1)))
    await pool.copy_records_to_table(
        "evaluations", records=ratings,
        columns=("hall_id", "ticket_id", "window_id", "staff_id", "rating", "reasons",
                 "device_id", "at"))
    return fold


def load_layout() -> Layout:
    return replace(load_hall_config(DEMO_CONFIG).layout, hall_id="bench")


# ---------------------------------------------------------------- reports


@dataclass(slots=True)
class Timing:
    name: str
    rows: int
    size: int
    samples_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms)


async def time_report(runs: int, name: str, make: Callable[[], Awaitable[tuple[int, bytes]]]
                      ) -> Timing:
    await make()
    samples, rows, size = [], 0, 0
    for _ in range(runs):
        started = time.perf_counter()
        rows, body = await make()
        samples.append((time.perf_counter() - started) * 1000)
        size = len(body)
    return Timing(name, rows, size, samples)


async def time_reports(pool: asyncpg.Pool, layout: Layout, fold: FactFold, last_day: date,
                       runs: int, say: Say) -> list[Timing]:
    since = datetime.combine(LIVE_DAY, clock_time(0), TZ)

    async def live() -> LiveFacts:
        fold.rate(await ratings_since(pool, layout.hall_id, since))
        return LiveFacts(fold.day, list(fold.facts.values()))

    def report(first: date, last: date, by: By, dim: Dim, csv: bool = False
               ) -> Callable[[], Awaitable[tuple[int, bytes]]]:
        async def make() -> tuple[int, bytes]:
            today = await live() if first <= LIVE_DAY <= last else None
            built = await build_report(pool, layout, first, last, by, dim, today)
            body = report_csv(built) if csv else msgspec.json.encode(report_json(built))
            return len(built.table), body

        return make

    plan: list[tuple[str, Callable[[], Awaitable[tuple[int, bytes]]]]] = []
    for by in ("day", "month"):
        for dim in DIMS:
            plan.append((f"year by {by} x {dim}", report(FIRST_DAY, LIVE_DAY, by, dim)))
    week = LIVE_DAY - timedelta(days=6)
    for dim in DIMS:
        plan.append((f"week by hour x {dim}", report(week, LIVE_DAY, "hour", dim)))
    december = (date(2025, 12, 1), date(2025, 12, 31))
    plan.append(("csv month by day x staff", report(*december, "day", "staff", csv=True)))
    plan.append(("csv month by day x service", report(*december, "day", "service", csv=True)))
    plan.append(("csv year by day x staff", report(FIRST_DAY, LIVE_DAY, "day", "staff",
                                                   csv=True)))
    timings = []
    for name, make in plan:
        timing = await time_report(runs, name, make)
        say(f"  {name:<30} {timing.rows:>7} rows {timing.size / 1024:>9.0f} KiB "
            f"{timing.median:>8.1f} ms (max {max(timing.samples_ms):.1f})")
        timings.append(timing)
    return timings


# ---------------------------------------------------------------- main


async def run(url: str, settings: Settings, quick: bool, say: Say) -> dict[str, Any]:
    rng = np.random.default_rng(20250106)
    layout = load_layout()
    hall = Hall(layout)
    days = open_days(FIRST_DAY, LIVE_DAY - timedelta(days=1))
    pool = await asyncpg.create_pool(url, min_size=2, max_size=4)
    try:
        say(f"history: {settings.tickets:,} tickets over {len(days)} open days "
            f"({days[0]} .. {days[-1]}){' -- quick mode, a smaller history' if quick else ''}")
        generating, copying = await load_history(pool, hall, days, settings.tickets, rng, say)
        say(f"  generated in {generating:.1f} s, COPY in {copying:.1f} s "
            f"({settings.tickets / copying:,.0f} rows/s)")
        rollup_s = await build_rollups(pool, days)
        rollups = await pool.fetchval("SELECT count(*) FROM daily_rollups")
        say(f"  rollups built from the facts in {rollup_s:.1f} s "
            f"({rollup_s / len(days) * 1000:.0f} ms a day, {rollups:,} rows)")
        await pool.execute("ANALYZE ticket_facts")
        await pool.execute("ANALYZE daily_rollups")
        per_day = settings.tickets // len(days)
        started = time.perf_counter()
        events = simulate_day(hall, LIVE_DAY, per_day, rng)
        simulate_s = time.perf_counter() - started
        started = time.perf_counter()
        fold = FactFold(layout, LIVE_DAY)
        fold.apply_all(events)
        fold_s = time.perf_counter() - started
        fold = await store_live_day(pool, layout, events, rng)
        say(f"today {LIVE_DAY}: {len(fold.facts):,} tickets, {len(events):,} events through "
            f"the engine in {simulate_s:.1f} s; live fold {fold_s * 1000:.0f} ms")
        say(f"reports (median of {settings.runs} runs, build + JSON/CSV body, no HTTP):")
        timings = await time_reports(pool, layout, fold, LIVE_DAY, settings.runs, say)
        started = time.perf_counter()
        tickets = await roll_up_day(pool, layout, LIVE_DAY)
        rollover_s = time.perf_counter() - started
        say(f"rollover of today from the log: {tickets:,} tickets in {rollover_s:.2f} s")
        size = await pool.fetchval("SELECT pg_total_relation_size('ticket_facts')"
                                   " + pg_total_relation_size('daily_rollups')")
        worst = max(timings, key=lambda t: t.median)
        return {
            "bench": "stats", "quick": quick, "python": platform.python_version(),
            "tickets": settings.tickets, "open_days": len(days), "live_day_tickets": tickets,
            "generate_s": round(generating, 1), "copy_s": round(copying, 1),
            "copy_rows_per_s": round(settings.tickets / copying),
            "rollup_build_s": round(rollup_s, 1), "rollup_rows": rollups,
            "rollover_day_s": round(rollover_s, 2), "tables_mib": round(size / 2**20),
            "runs": settings.runs,
            "reports_ms": {t.name: round(t.median, 1) for t in timings},
            "report_rows": {t.name: t.rows for t in timings},
            "max_report_ms": round(worst.median, 1), "max_report": worst.name,
            "goal_ms": GOAL_MS, "pass": worst.median < GOAL_MS,
        }
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="300,000 tickets, under 30 s")
    parser.add_argument("--tickets", type=int, help="history size (default 5,200,000)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.tickets:
        settings = Settings(tickets=args.tickets, runs=settings.runs)
    wall = time.perf_counter()

    def say(line: str) -> None:
        print(line, flush=True)

    say(f"stats bench ({'quick' if args.quick else 'full'}), Python {platform.python_version()},"
        f" {os.cpu_count()} cores shared with PostgreSQL")
    scratch = Path(tempfile.mkdtemp(prefix="smarthall-stats-"))
    name = f"smarthall_bench_{uuid.uuid4().hex[:10]}"
    admin_url: str | None = None
    embedded: Database | None = None
    created = False
    try:
        admin_url, origin, embedded = find_server(scratch)
        url = asyncio.run(create_database(admin_url, name))
        created = True
        say(f"database: {origin}, throwaway database {name} (migrated)")
        summary = asyncio.run(run(url, settings, args.quick, say))
    except KeyboardInterrupt:
        say(f"interrupted; database {name} dropped")
        return 130
    finally:
        if created and admin_url is not None:
            drop_throwaway_database(admin_url, name)
        if embedded is not None:
            embedded.close()
        shutil.rmtree(scratch, ignore_errors=True)
    summary["wall_s"] = round(time.perf_counter() - wall, 1)
    verdict = "under" if summary["pass"] else "OVER"
    say(f"slowest report: {summary['max_report']} {summary['max_report_ms']} ms, {verdict} the "
        f"{GOAL_MS:.0f} ms goal; wall time {summary['wall_s']} s")
    print(json.dumps(summary, ensure_ascii=False, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
