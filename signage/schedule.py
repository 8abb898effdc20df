"""What a screen shows at a given moment, and when that next changes (D8).

Deterministic: the same content, screen and time give the same answer, so the
server can work out the next change and set one timer for it instead of asking
every second, and a test can ask about any moment without waiting for it.

Times are aware datetimes; schedules are in the hall's local time (``zone``),
and an occurrence that runs past midnight belongs to the day it starts on
(see ``Schedule``). Screens in the same groups see the same thing, so
``plan`` works each set of groups out once, however many screens share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dt_time
from zoneinfo import ZoneInfo

from signage.model import NOTICE_LEVELS, Content, Item, Layout, Notice, Region, Schedule, Screen

HORIZON = timedelta(days=8)
"""How far ahead a change is looked for: past a week every weekly pattern has
repeated; a change further off (a date range next month) is found by looking
again later (``Showing.until`` is None meanwhile, and the server looks again
within a day)."""
MAX_NOTICES = 5


@dataclass(frozen=True, slots=True)
class Showing:
    """What one screen shows: the winning schedule's layout and playlists (none
    when no schedule plays), the urgent notices, and when this next changes."""

    schedule: Schedule | None
    layout: Layout | None
    regions: tuple[tuple[Region, tuple[Item, ...]], ...]
    notices: tuple[Notice, ...]
    until: datetime | None

    @property
    def blank(self) -> bool:
        return self.schedule is None and not self.notices


def occurrence(schedule: Schedule, at: datetime,
               zone: ZoneInfo) -> tuple[datetime, datetime] | None:
    """The run of ``schedule`` that covers ``at``, as [begin, end), or None."""
    if not schedule.enabled:
        return None
    day = at.astimezone(zone).date()
    for start_day in (day, day - timedelta(days=1)):
        if not schedule.plays_on(start_day):
            continue
        begin, end = _run(schedule, start_day, zone)
        if begin <= at < end:
            return begin, end
    return None


def _run(schedule: Schedule, day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    if schedule.start is None or schedule.end is None:
        return _local(day, dt_time(0), zone), _local(day + timedelta(days=1), dt_time(0), zone)
    end_day = day if schedule.end > schedule.start else day + timedelta(days=1)
    return _local(day, schedule.start, zone), _local(end_day, schedule.end, zone)


def _local(day: date, clock: dt_time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock, zone)


def winner(schedules: Iterable[Schedule], at: datetime, zone: ZoneInfo) -> Schedule | None:
    """Highest priority first; between equals the run that began last, then the smaller id."""
    running = [(schedule, run[0]) for schedule in schedules
               if (run := occurrence(schedule, at, zone)) is not None]
    if not running:
        return None
    return min(running, key=lambda r: (-r[0].priority, -r[1].timestamp(), r[0].id))[0]


def active_notices(notices: Iterable[Notice], at: datetime) -> tuple[Notice, ...]:
    """The most pressing first, then the newest; at most ``MAX_NOTICES``."""
    live = [n for n in notices if n.active(at)]
    live.sort(key=lambda n: (-n.starts_at.timestamp(), n.id))
    live.sort(key=lambda n: NOTICE_LEVELS.index(n.level) if n.level in NOTICE_LEVELS
              else len(NOTICE_LEVELS))
    return tuple(live[:MAX_NOTICES])


def boundaries(schedules: Iterable[Schedule], notices: Iterable[Notice], after: datetime,
               zone: ZoneInfo) -> list[datetime]:
    """Every instant in (after, after + HORIZON] at which a run or a notice starts
    or ends: the only moments what a screen shows can change."""
    until = after + HORIZON
    first = after.astimezone(zone).date() - timedelta(days=1)
    found: set[datetime] = set()
    for schedule in schedules:
        if not schedule.enabled:
            continue
        for offset in range(HORIZON.days + 2):
            day = first + timedelta(days=offset)
            if schedule.plays_on(day):
                found.update(_run(schedule, day, zone))
    for notice in notices:
        found.update((notice.starts_at, notice.expires_at))
    return sorted(moment for moment in found if after < moment <= until)


def _state(schedules: Sequence[Schedule], notices: Sequence[Notice], at: datetime,
           zone: ZoneInfo) -> tuple[str | None, tuple[str, ...]]:
    chosen = winner(schedules, at, zone)
    return (None if chosen is None else chosen.id,
            tuple(n.id for n in active_notices(notices, at)))


def resolve(content: Content, screen: Screen, at: datetime, zone: ZoneInfo) -> Showing:
    """What ``screen`` shows at ``at``."""
    groups = tuple(sorted(g.id for g in content.groups.values() if g.matches(screen)))
    return _showing(content, groups, at, zone)


def plan(content: Content, screens: Iterable[Screen], at: datetime,
         zone: ZoneInfo) -> dict[str, Showing]:
    """What each screen shows at ``at``, each distinct set of groups worked out once."""
    by_groups: dict[tuple[str, ...], Showing] = {}
    shown: dict[str, Showing] = {}
    for screen in screens:
        groups = tuple(sorted(g.id for g in content.groups.values() if g.matches(screen)))
        if groups not in by_groups:
            by_groups[groups] = _showing(content, groups, at, zone)
        shown[screen.id] = by_groups[groups]
    return shown


def next_change(showings: Iterable[Showing]) -> datetime | None:
    return min((s.until for s in showings if s.until is not None), default=None)


def _showing(content: Content, groups: tuple[str, ...], at: datetime,
             zone: ZoneInfo) -> Showing:
    mine = [s for s in content.schedules.values() if s.group in groups]
    notices = list(content.notices)
    chosen = winner(mine, at, zone)
    now = _state(mine, notices, at, zone)
    until = next(_changes(mine, notices, at, zone, now), None)
    layout = None if chosen is None else content.layouts.get(chosen.layout)
    regions: tuple[tuple[Region, tuple[Item, ...]], ...] = ()
    if chosen is not None and layout is not None:
        regions = tuple((region, _playlist(chosen.playlist, region.id, content.items))
                        for region in layout.regions)
    return Showing(chosen if layout is not None else None, layout, regions,
                   active_notices(notices, at), until)


def _changes(schedules: Sequence[Schedule], notices: Sequence[Notice], at: datetime,
             zone: ZoneInfo, now: tuple[str | None, tuple[str, ...]]) -> Iterator[datetime]:
    for moment in boundaries(schedules, notices, at, zone):
        if _state(schedules, notices, moment, zone) != now:
            yield moment


def _playlist(playlist: Mapping[str, tuple[str, ...]], region_id: str,
              items: Mapping[str, Item]) -> tuple[Item, ...]:
    return tuple(items[i] for i in playlist.get(region_id, ()) if i in items)
