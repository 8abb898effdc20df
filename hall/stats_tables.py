"""Counts, sums and histograms per (period, key): the one shape every report is
summed in, whether it comes from the daily rollups, from ticket facts or from
today's live facts.

A p90 cannot be added up, a histogram can: wait and service seconds are counted
in fixed buckets (``BUCKET_EDGES``), and the p90 of any range is read off the
summed histogram, exact to its bucket. The buckets are 1 minute wide up to 30
minutes, 2 minutes up to an hour, 5 minutes up to 2 hours and 15 minutes up to
8 hours; the last one holds everything from 8 hours on. A reported p90 is the
upper edge of the bucket that holds the 90th percentile (nearest rank): at
least 90% of the values are below it, and the true p90 is at most one bucket
width lower.

The arithmetic is numpy's, vectorised over all groups at once, so a year of
daily rows by staff (tens of thousands of groups) costs milliseconds.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from hall.stats_facts import Fact

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


def _edges() -> list[int]:
    edges = list(range(60, 1801, 60))
    edges += range(1920, 3601, 120)
    edges += range(3900, 7201, 300)
    edges += range(8100, 28801, 900)
    return edges


BUCKET_EDGES: tuple[int, ...] = tuple(_edges())
"""Lower edges (seconds) of buckets 1..N; bucket 0 is [0, 60 s)."""
BUCKETS = len(BUCKET_EDGES) + 1
_EDGES = np.array(BUCKET_EDGES, dtype=np.int64)
_UPPER = np.array([*BUCKET_EDGES, BUCKET_EDGES[-1]], dtype=np.int64)
"""What a p90 in each bucket is reported as; the open last bucket as its lower edge."""

COUNTERS = (
    "tickets", "served", "no_shows", "skipped", "transfers", "cancelled", "expired",
    "wait_n", "wait_sum", "service_n", "service_sum", "rating_n", "rating_sum", "rating_low",
)
"""The additive figures, in the order of ``Table.counts``' columns and of the
rollup table's columns."""
HIST_DTYPE = np.dtype("<u4")
"""A stored histogram: BUCKETS little-endian uint32 counts."""

Label = tuple[str, str]
"""(period, key): ``2026-11-24`` / ``2026-11`` / ``2026-11-24 09:00``, and the
service, window, staff, area or source (``""`` for the whole hall)."""


def bucket_of(seconds: npt.ArrayLike) -> Ints:
    """Bucket index of each value: the same as PostgreSQL's ``width_bucket``
    over ``BUCKET_EDGES``."""
    return np.searchsorted(_EDGES, np.asarray(seconds, dtype=np.int64), side="right").astype(
        np.int64)


@dataclass(slots=True)
class Table:
    labels: list[Label]
    counts: Ints
    """(groups, len(COUNTERS))"""
    wait: Ints
    """(groups, BUCKETS); (groups, 0) when only the p90s were read."""
    service: Ints
    p90: tuple[Floats, Floats] | None = None
    """Wait and service p90s as stored, for rows read without their histograms
    (a daily report needs no sums of days, so it reads the day's own p90)."""

    @classmethod
    def empty(cls) -> Table:
        return cls([], np.zeros((0, len(COUNTERS)), np.int64), np.zeros((0, BUCKETS), np.int64),
                   np.zeros((0, BUCKETS), np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def p90s(self) -> tuple[Floats, Floats]:
        if self.p90 is not None:
            return self.p90
        return p90_seconds(self.wait), p90_seconds(self.service)

    def hist_bytes(self, row: int) -> tuple[bytes, bytes]:
        return (self.wait[row].astype(HIST_DTYPE).tobytes(),
                self.service[row].astype(HIST_DTYPE).tobytes())


@dataclass(slots=True)
class Columns:
    """Facts as the columns that are added up, made once for all the labels."""

    values: Ints
    """(facts, len(COUNTERS)): each fact's share of every counter."""
    wait_bucket: Ints
    """(facts,): the bucket of its wait, -1 when it has none."""
    service_bucket: Ints

    def __len__(self) -> int:
        return len(self.values)


OUTCOME_CODES = {"finished": 0, "abandoned": 1, "cancelled": 2, "expired": 3, "open": 4}


def columns(facts: Sequence[Fact]) -> Columns:
    """One pass over the facts (today's live ones are tens of thousands)."""
    codes = OUTCOME_CODES
    raw = np.array(
        [(-1 if f.wait_s is None else f.wait_s, -1 if f.service_s is None else f.service_s,
          f.rating or 0, codes[f.outcome], f.skips, f.transfers) for f in facts],
        dtype=np.int64).reshape(-1, 6)
    names = np.array(list(codes), dtype=object)
    return columns_of(wait=raw[:, 0], service=raw[:, 1], rating=raw[:, 2],
                      outcome=names[raw[:, 3]], skips=raw[:, 4], transfers=raw[:, 5])


def columns_of_records(records: Sequence[Any]) -> Columns:
    """From ``ticket_facts`` rows (wait_s, service_s, rating, outcome, skips,
    transfers, by name), where a missing figure is NULL."""
    count = len(records)

    def ints(name: str) -> Ints:
        return np.fromiter((-1 if r[name] is None else r[name] for r in records), np.int64,
                           count)

    rating = ints("rating")
    return columns_of(
        wait=ints("wait_s"), service=ints("service_s"), rating=np.where(rating < 0, 0, rating),
        outcome=np.array([r["outcome"] for r in records], dtype=object),
        skips=ints("skips"), transfers=ints("transfers"),
    )


def columns_of(*, wait: Ints, service: Ints, rating: Ints, outcome: npt.NDArray[Any],
               skips: Ints, transfers: Ints) -> Columns:
    """``wait`` and ``service`` are -1 where a fact has none, ``rating`` 0."""
    count = len(wait)
    called, served, rated = wait >= 0, service >= 0, rating > 0
    parts = [
        np.ones(count, np.int64), outcome == "finished", outcome == "abandoned", skips > 0,
        transfers, outcome == "cancelled", outcome == "expired", called,
        np.where(called, wait, 0), served, np.where(served, service, 0), rated, rating,
        rated & (rating <= 2),
    ]
    values = np.stack([np.asarray(part, dtype=np.int64) for part in parts], axis=1)
    return Columns(values, np.where(called, bucket_of(wait), -1),
                   np.where(served, bucket_of(service), -1))


def tabulate(cols: Columns, labels: Sequence[Label]) -> Table:
    """Group facts by their label (one per fact) and add them up."""
    index: dict[Label, int] = {}
    group = np.fromiter((index.setdefault(label, len(index)) for label in labels),
                        dtype=np.int64, count=len(labels))
    size = len(index)
    counts = np.zeros((size, len(COUNTERS)), np.int64)
    for column in range(len(COUNTERS)):
        counts[:, column] = np.bincount(group, weights=cols.values[:, column], minlength=size)
    return Table(list(index), counts, _histogram(group, cols.wait_bucket, size),
                 _histogram(group, cols.service_bucket, size))


def _histogram(group: Ints, buckets: Ints, size: int) -> Ints:
    present = buckets >= 0
    flat = np.bincount(group[present] * BUCKETS + buckets[present], minlength=size * BUCKETS)
    return flat.astype(np.int64).reshape(size, BUCKETS)


def _counters(rows: Sequence[Any], offset: int) -> Ints:
    size, width = len(rows), len(COUNTERS)
    flat = itertools.chain.from_iterable(row[offset:offset + width] for row in rows)
    return np.fromiter(flat, dtype=np.int64, count=size * width).reshape(size, width)


def from_rollups(labels: list[Label], rows: Sequence[Any], offset: int) -> Table:
    """``rows[i][offset:]`` holds the ``COUNTERS`` of ``labels[i]``, then its
    wait and service blobs: one or more stored histograms one after another
    (``string_agg`` of the days that make the period)."""
    if not rows:
        return Table.empty()
    end = offset + len(COUNTERS)
    return Table(labels, _counters(rows, offset), _sum_blobs([row[end] for row in rows]),
                 _sum_blobs([row[end + 1] for row in rows]))


def from_p90_rows(labels: list[Label], rows: Sequence[Any], offset: int) -> Table:
    """``rows[i][offset:]`` holds the ``COUNTERS`` of ``labels[i]``, then its
    stored wait and service p90 (NULL when it has no values)."""
    if not rows:
        return Table.empty()
    end = offset + len(COUNTERS)

    def p90(column: int) -> Floats:
        return np.fromiter((np.nan if r[column] is None else r[column] for r in rows),
                           dtype=np.float64, count=len(rows))

    none = np.zeros((len(rows), 0), np.int64)
    return Table(labels, _counters(rows, offset), none, none, (p90(end), p90(end + 1)))


def _sum_blobs(blobs: Sequence[bytes]) -> Ints:
    width = BUCKETS * HIST_DTYPE.itemsize
    stacked = np.frombuffer(b"".join(blobs), dtype=HIST_DTYPE).reshape(-1, BUCKETS)
    if len(stacked) == len(blobs):
        return stacked.astype(np.int64)
    lengths = np.fromiter((len(b) // width for b in blobs), dtype=np.int64, count=len(blobs))
    running = np.vstack([np.zeros((1, BUCKETS), np.int64), stacked.cumsum(axis=0, dtype=np.int64)])
    ends = np.cumsum(lengths)
    result: Ints = running[ends] - running[ends - lengths]
    return result


def from_bucket_ids(labels: list[Label], rows: Sequence[Any], offset: int) -> Table:
    """``rows[i][offset:]`` holds the ``COUNTERS`` of ``labels[i]``, then its wait
    and service ids: one byte per ticket, its bucket (the hourly reports, which
    ``string_agg`` the buckets of raw facts)."""
    if not rows:
        return Table.empty()
    end = offset + len(COUNTERS)
    return Table(labels, _counters(rows, offset), _count_ids([row[end] or b"" for row in rows]),
                 _count_ids([row[end + 1] or b"" for row in rows]))


def _count_ids(blobs: Sequence[bytes]) -> Ints:
    size = len(blobs)
    lengths = np.fromiter((len(b) for b in blobs), dtype=np.int64, count=size)
    ids = np.frombuffer(b"".join(blobs), dtype=np.uint8).astype(np.int64)
    group = np.repeat(np.arange(size, dtype=np.int64), lengths)
    flat = np.bincount(group * BUCKETS + ids, minlength=size * BUCKETS)
    return flat.astype(np.int64).reshape(size, BUCKETS)


def merge(tables: Iterable[Table]) -> Table:
    """Add up tables whose labels may overlap (the rolled-up days and today).
    Labels are unique within each table, and the first is usually by far the
    largest: it is copied once, the others are added into it. Tables read with
    their p90s only cannot be added: their labels must not overlap."""
    present = [t for t in tables if len(t)]
    if not present:
        return Table.empty()
    first, rest = present[0], present[1:]
    if not rest:
        return first
    if any(t.p90 is not None for t in present):
        return _concatenate(present)
    index = {label: i for i, label in enumerate(first.labels)}
    labels = list(first.labels)
    places = []
    for table in rest:
        place = []
        for label in table.labels:
            if label not in index:
                index[label] = len(labels)
                labels.append(label)
            place.append(index[label])
        places.append(np.array(place, dtype=np.int64))
    grown = len(labels) - len(first)

    def add(part: Callable[[Table], Ints]) -> Ints:
        out = np.vstack([part(first), np.zeros((grown, part(first).shape[1]), np.int64)])
        for table, place in zip(rest, places, strict=True):
            out[place] += part(table)
        return out

    return Table(labels, add(lambda t: t.counts), add(lambda t: t.wait),
                 add(lambda t: t.service))


def _concatenate(tables: Sequence[Table]) -> Table:
    labels = [label for t in tables for label in t.labels]
    if len(set(labels)) != len(labels):
        raise ValueError("tables read with their p90s only cannot be added up")
    p90s = [t.p90s() for t in tables]
    none = np.zeros((len(labels), 0), np.int64)
    return Table(labels, np.concatenate([t.counts for t in tables]), none, none,
                 (np.concatenate([w for w, _ in p90s]), np.concatenate([s for _, s in p90s])))


def sorted_by_label(table: Table) -> Table:
    """Periods, then keys, in code point order (the queries sort with COLLATE "C",
    so a table straight from the database is sorted already)."""
    labels = table.labels
    if all(a < b for a, b in itertools.pairwise(labels)):
        return table
    order = sorted(range(len(table)), key=labels.__getitem__)
    picks = np.array(order, dtype=np.int64)
    p90 = None if table.p90 is None else (table.p90[0][picks], table.p90[1][picks])
    return Table([labels[i] for i in order], table.counts[picks], table.wait[picks],
                 table.service[picks], p90)


def p90_seconds(hist: Ints) -> Floats:
    """Per row: the upper edge of the bucket holding the nearest-rank 90th
    percentile; NaN for a row with no values. Integer arithmetic, so 90% of
    10 is exactly 9."""
    cumulative = hist.cumsum(axis=1)
    total = cumulative[:, -1:] if hist.shape[1] else np.zeros((hist.shape[0], 1), np.int64)
    reached = cumulative * 10 >= total * 9
    index = reached.argmax(axis=1)
    return np.where(total[:, 0] > 0, _UPPER[index].astype(np.float64), np.nan)
