"""A statistics report: figures per period and group over a range of days.

Days and months read the daily rollups only; hours read the ticket facts of
the range. Today, not rolled up yet, comes from the live facts and is added to
whatever the tables hold, so a report always reaches up to now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import asyncpg
import numpy as np
import numpy.typing as npt

from hall import stats_store as store
from hall.stats_facts import Fact
from hall.stats_store import Dim
from hall.stats_tables import (
    COUNTERS,
    Label,
    Table,
    columns,
    from_bucket_ids,
    from_p90_rows,
    from_rollups,
    merge,
    sorted_by_label,
    tabulate,
)
from queueing import Layout

By = Literal["day", "hour", "month"]

SOURCE_NAMES = {
    "walk_in": "现场取号", "id_card": "身份证取号", "phone": "手机号取号",
    "appointment": "预约取号", "mobile": "移动端取号", "priority": "优先取号",
}
NO_WINDOW = "（未叫号）"
"""The name of key "" for windows, staff and areas: tickets no window called."""

FIELDS = (
    "period", "key", "name", "tickets", "served", "no_shows", "skipped", "transfers",
    "cancelled", "expired", "called", "wait_mean_s", "wait_p90_s", "service_mean_s",
    "service_p90_s", "ratings", "rating_mean", "low_rating_share",
)
"""A report row's fields, in order (the CSV's columns too)."""

_C = {name: index for index, name in enumerate(COUNTERS)}


@dataclass(frozen=True, slots=True)
class LiveFacts:
    day: date
    facts: list[Fact]


@dataclass(slots=True)
class Report:
    first: date
    last: date
    by: By
    group: Dim
    live_day: date | None
    """Today, when the range holds it: its figures are live, not rolled up."""
    missing_days: list[date]
    """Opened days of the range that are not rolled up yet (the rollover is running)."""
    table: Table
    names: dict[str, str]

    def columns(self) -> list[list[Any]]:
        """The figures column by column, in the order of ``FIELDS``."""
        table = self.table
        c = table.counts
        wait_p90, service_p90 = table.p90s()
        names = self.names
        return [
            [period for period, _ in table.labels],
            [key for _, key in table.labels],
            [names.get(key, key) for _, key in table.labels],
            *(c[:, _C[name]].tolist() for name in (
                "tickets", "served", "no_shows", "skipped", "transfers", "cancelled",
                "expired", "wait_n")),
            _ratio(c[:, _C["wait_sum"]], c[:, _C["wait_n"]], 1),
            _nullable(wait_p90),
            _ratio(c[:, _C["service_sum"]], c[:, _C["service_n"]], 1),
            _nullable(service_p90),
            c[:, _C["rating_n"]].tolist(),
            _ratio(c[:, _C["rating_sum"]], c[:, _C["rating_n"]], 2),
            _ratio(c[:, _C["rating_low"]], c[:, _C["rating_n"]], 4),
        ]

    def rows(self) -> list[dict[str, Any]]:
        return [dict(zip(FIELDS, values, strict=True))
                for values in zip(*self.columns(), strict=True)]


def _ratio(numerator: npt.NDArray[np.int64], denominator: npt.NDArray[np.int64], digits: int
           ) -> list[float | None]:
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.round(numerator / denominator, digits)
    return _nullable(values)


def _nullable(values: npt.NDArray[np.float64]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]


def period_label(by: By, day: date, hour: int = 0) -> str:
    if by == "month":
        return f"{day:%Y-%m}"
    if by == "hour":
        return f"{day.isoformat()} {hour:02d}:00"
    return day.isoformat()


def fact_key(fact: Fact, dim: Dim) -> str:
    if dim == "hall":
        return ""
    if dim == "source":
        return fact.source
    if dim == "area":
        return fact.area
    if dim == "service":
        return fact.service
    if dim == "window":
        return fact.window
    return fact.staff


def live_table(live: LiveFacts, by: By, dim: Dim) -> Table:
    facts = live.facts
    keys = [fact_key(f, dim) for f in facts] if dim != "hall" else [""] * len(facts)
    if by == "hour":
        hours = [period_label(by, live.day, hour) for hour in range(24)]
        labels: list[Label] = [(hours[f.hour], key) for f, key in zip(facts, keys, strict=True)]
    else:
        period = period_label(by, live.day)
        labels = [(period, key) for key in keys]
    return tabulate(columns(facts), labels)


async def stored_table(pool: asyncpg.Pool, hall_id: str, first: date, last: date, by: By,
                       dim: Dim, rolled_through: date | None = None) -> Table:
    """What the tables hold for [first, last]. A month counts as whole, and is
    read from the monthly rollups, when the range covers it or covers all of
    it that can be rolled up (up to ``rolled_through``, yesterday)."""
    if by == "hour":
        rows = await store.hourly_rows(pool, hall_id, dim, first, last)
        labels = [(period_label(by, r[0], r[1]), r[2]) for r in rows]
        return from_bucket_ids(labels, rows, 3)
    if by == "day":
        rows = await store.daily_rows(pool, hall_id, dim, first, last)
        return from_p90_rows([(period_label(by, r[0]), r[1]) for r in rows], rows, 2)
    reaches_all = rolled_through is not None and last >= rolled_through
    whole = [m for m in _months(first, last) if first <= m and (
        reaches_all or last >= store.next_month(m) - timedelta(days=1))]
    tables = []
    if whole:
        rows = await store.month_rows(pool, hall_id, dim, whole[0], whole[-1])
        tables.append(from_rollups([(period_label(by, r[0]), r[1]) for r in rows], rows, 2))
    for start in _months(first, last):
        if start in whole:
            continue
        part_first = max(first, start)
        part_last = min(last, store.next_month(start) - timedelta(days=1))
        rows = await store.days_by_month(pool, hall_id, dim, part_first, part_last)
        tables.append(from_rollups([(period_label(by, r[0]), r[1]) for r in rows], rows, 2))
    return merge(tables)


def _months(first: date, last: date) -> list[date]:
    months, month = [], first.replace(day=1)
    while month <= last:
        months.append(month)
        month = store.next_month(month)
    return months


async def build_report(pool: asyncpg.Pool, layout: Layout, first: date, last: date, by: By,
                       dim: Dim, live: LiveFacts | None = None) -> Report:
    """``live`` is today's facts, or None when the range does not hold today;
    stored rows of the live day (there should be none) are left out, so it is
    never counted twice."""
    hall_id = layout.hall_id
    stored_last = last
    if live is not None and first <= live.day <= last:
        stored_last = min(last, live.day - timedelta(days=1))
    else:
        live = None
    tables = []
    if first <= stored_last:
        yesterday = live.day - timedelta(days=1) if live is not None else None
        tables.append(await stored_table(pool, hall_id, first, stored_last, by, dim, yesterday))
    if live is not None:
        tables.append(live_table(live, by, dim))
    missing: list[date] = []
    if first <= stored_last:
        rolled = await store.rolled_days(pool, hall_id, first, stored_last)
        opened = await store.opened_days(pool, hall_id, first, stored_last)
        missing = [day for day in opened if day not in rolled]
    return Report(first, last, by, dim, live.day if live else None, missing,
                  sorted_by_label(merge(tables)), await names_of(pool, layout, dim))


async def names_of(pool: asyncpg.Pool, layout: Layout, dim: Dim) -> dict[str, str]:
    names: dict[str, str]
    if dim == "hall":
        return {"": layout.name}
    if dim == "source":
        return dict(SOURCE_NAMES)
    if dim == "service":
        names = {s.id: s.name for s in layout.services.values()}
    elif dim == "window":
        names = {w.id: w.name for w in layout.windows.values()}
    elif dim == "area":
        names = {a.id: a.name for a in layout.areas.values()}
    else:
        names = await store.staff_names(pool)
    return {"": NO_WINDOW, **names}
