"""Weekly opening hours.

Kept as plain time-of-day intervals on a set of weekdays because that is how
halls publish them (周一至周五 9:00-12:00, 13:30-17:00); holidays and special
days are the server's business, which simply closes or opens the day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from itertools import pairwise

WORKDAYS: frozenset[int] = frozenset(range(5))
"""Monday to Friday, as ``datetime.weekday()`` numbers them."""


@dataclass(frozen=True, slots=True)
class Hours:
    """Intervals ``[start, end)`` of local time on the given weekdays."""

    intervals: tuple[tuple[time, time], ...]
    weekdays: frozenset[int] = WORKDAYS

    def __post_init__(self) -> None:
        for start, end in self.intervals:
            if not start < end:
                raise ValueError(f"interval {start:%H:%M}-{end:%H:%M} ends before it starts")
        ordered = sorted(self.intervals)
        for (_, end), (start, _) in pairwise(ordered):
            if start < end:
                raise ValueError("intervals overlap")
        if not self.weekdays <= frozenset(range(7)):
            raise ValueError("weekdays are numbered 0 (Monday) to 6 (Sunday)")

    def period_start(self, now: datetime) -> datetime | None:
        """Start of the interval that contains ``now``, or None when closed.

        The caller passes hall-local time; the result carries the same tzinfo.
        """
        if now.weekday() not in self.weekdays:
            return None
        moment = now.time()
        for start, end in self.intervals:
            if start <= moment < end:
                return now.replace(
                    hour=start.hour, minute=start.minute, second=start.second, microsecond=0
                )
        return None

    def is_open(self, now: datetime) -> bool:
        if now.weekday() not in self.weekdays:
            return False
        moment = now.time()
        return any(start <= moment < end for start, end in self.intervals)


ALWAYS = Hours(((time(0, 0), time(23, 59, 59, 999999)),), frozenset(range(7)))
"""Open at every moment: the default for tests and 7×24 services."""


def parse_interval(text: str) -> tuple[time, time]:
    """Parse ``"09:00-12:00"``; raises ValueError with the offending text."""
    try:
        start_text, end_text = text.split("-")
        return time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an interval like '09:00-12:00'") from exc


END_OF_DAY = "24:00"


def parse_clock(text: str, *, end: bool = False) -> time:
    """Parse ``"09:00"``; an interval may end at ``"24:00"``, midnight."""
    if end and text == END_OF_DAY:
        return time.max
    if len(text) != 5 or text[2] != ":":
        raise ValueError(f"{text!r} is not a time like '09:00'")
    return time.fromisoformat(text)


def format_clock(moment: time) -> str:
    return END_OF_DAY if moment == time.max else f"{moment:%H:%M}"


def hours_from_texts(intervals: Sequence[tuple[str, str]], weekdays: frozenset[int]) -> Hours:
    """Hours from ``[("09:00", "12:00"), ...]``; raises ValueError when an interval
    is malformed, empty or reversed, or two overlap."""
    parsed = tuple(
        (parse_clock(start), parse_clock(end, end=True)) for start, end in intervals
    )
    return Hours(tuple(sorted(parsed)), weekdays)
