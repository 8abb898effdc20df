"""What a hall's screens can be told to show (D8): the content model, checked once.

Pure and immutable, like the engine: no I/O, no clock. The server stores these in
PostgreSQL and hands them to ``signage.schedule`` with the time; screens get the
result over the bus. Everything a manager may get wrong is refused here, by
``check``, with the field and the reason, so that what reaches a screen is always
drawable.

* A **layout** divides a screen into regions, in per cent of its width and
  height, so the same layout fits a 16:9 hall board and a 4:3 window screen.
  A region is a live widget the device draws from its own view (``calling``,
  ``queue``), the ``clock``, a ``ticker`` of notices, or a ``media`` area that
  plays a playlist.
* A **content item** is what a playlist plays: a notice text, an image or a video
  by URL, or a live widget (the queue figures, the calls) shown in rotation.
* A **screen group** says which screens: by area, floor and kind, or by device id.
* A **schedule** says what a group shows when: a layout and a playlist per region,
  on some weekdays, in a time range, between two dates, with a priority.
* A **notice** is urgent text pushed to every screen at once until it expires.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from enum import StrEnum


class RegionKind(StrEnum):
    CALLING = "calling"
    """The calling positions (window screen) or the calls (board), from the device's live view."""
    QUEUE = "queue"
    """Waiting counts per service, from the device's live view."""
    TICKER = "ticker"
    """Notice texts scrolling in a line."""
    MEDIA = "media"
    """Images, videos, notices and live widgets in rotation."""
    CLOCK = "clock"


class ItemKind(StrEnum):
    NOTICE = "notice"
    IMAGE = "image"
    VIDEO = "video"
    QUEUE = "queue"
    CALLING = "calling"


PLAYS: Mapping[RegionKind, frozenset[ItemKind]] = {
    RegionKind.MEDIA: frozenset(ItemKind),
    RegionKind.TICKER: frozenset({ItemKind.NOTICE}),
    RegionKind.CALLING: frozenset(),
    RegionKind.QUEUE: frozenset(),
    RegionKind.CLOCK: frozenset(),
}
"""Which items each kind of region plays. Live widgets and the clock draw
themselves; a playlist for them would be a mistake, not a wish."""

SCREEN_KINDS = frozenset({"window_screen", "hall_board"})
"""Devices that draw laid-out content. LED strips show text lines only and keep
their own views."""

NOTICE_LEVELS = ("urgent", "warning", "info")
"""Most pressing first: the order screens list notices in."""


class ContentError(ValueError):
    """Content that contradicts itself or the hall; ``where`` names the field."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Region:
    id: str
    kind: RegionKind
    x: float
    y: float
    w: float
    h: float


@dataclass(frozen=True, slots=True)
class Layout:
    id: str
    name: str
    regions: tuple[Region, ...]

    def region(self, region_id: str) -> Region | None:
        return next((r for r in self.regions if r.id == region_id), None)


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    kind: ItemKind
    title: str = ""
    text: str | None = None
    """A notice's words."""
    url: str | None = None
    """An image's or a video's address; the screen fetches it."""
    seconds: int | None = None
    """How long it stays in rotation; None for a video means to its end."""
    services: tuple[str, ...] = ()
    """For a queue widget: the services to show, all of the device's when empty."""


@dataclass(frozen=True, slots=True)
class Screen:
    """A device that draws signage, as far as groups can tell screens apart."""

    id: str
    kind: str
    area: str | None
    floor: int | None


@dataclass(frozen=True, slots=True)
class Group:
    """Screens listed by id, plus those that pass every filter given (area,
    floor, kind); a group with neither lists nor filters is every screen."""

    id: str
    name: str
    areas: frozenset[str] = frozenset()
    floors: frozenset[int] = frozenset()
    kinds: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()

    def matches(self, screen: Screen) -> bool:
        if screen.id in self.devices:
            return True
        filtered = bool(self.areas or self.floors or self.kinds)
        if not filtered:
            return not self.devices
        return ((not self.areas or screen.area in self.areas)
                and (not self.floors or screen.floor in self.floors)
                and (not self.kinds or screen.kind in self.kinds))


@dataclass(frozen=True, slots=True)
class Schedule:
    """Plays on each day that is one of ``weekdays`` (ISO: Monday 1 … Sunday 7;
    every day when empty) and falls within ``start_date``…``end_date``
    (inclusive; open-ended when None), from ``start`` to ``end`` local time, or
    the whole day when both are None. An ``end`` at or before ``start`` runs
    past midnight into the next morning: the day it starts on is the one that
    must match. Higher ``priority`` wins an overlap; between equals, the one
    that began last (a short slot inside a long one takes over), then the
    smaller id."""

    id: str
    name: str
    group: str
    layout: str
    playlist: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Region id -> item ids, in playing order."""
    priority: int = 0
    weekdays: frozenset[int] = frozenset()
    start: time | None = None
    end: time | None = None
    start_date: date | None = None
    end_date: date | None = None
    enabled: bool = True

    def plays_on(self, day: date) -> bool:
        if self.weekdays and day.isoweekday() not in self.weekdays:
            return False
        if self.start_date is not None and day < self.start_date:
            return False
        return self.end_date is None or day <= self.end_date


@dataclass(frozen=True, slots=True)
class Notice:
    """Shown on every screen from ``starts_at`` until ``expires_at`` (exclusive)."""

    id: str
    text: str
    level: str
    starts_at: datetime
    expires_at: datetime

    def active(self, at: datetime) -> bool:
        return self.starts_at <= at < self.expires_at


@dataclass(frozen=True, slots=True)
class Content:
    """Everything the hall's screens may show, as stored."""

    layouts: Mapping[str, Layout] = field(default_factory=dict)
    items: Mapping[str, Item] = field(default_factory=dict)
    groups: Mapping[str, Group] = field(default_factory=dict)
    schedules: Mapping[str, Schedule] = field(default_factory=dict)
    notices: tuple[Notice, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing configured at all: screens are left to their own views."""
        return not (self.layouts or self.items or self.groups or self.schedules
                    or self.notices)


# ------------------------------------------------------------------ checks

MAX_REGIONS = 12
MAX_PLAYLIST = 50


def check_layout(layout: Layout) -> None:
    if not layout.regions:
        raise ContentError("regions", "a layout has at least one region")
    if len(layout.regions) > MAX_REGIONS:
        raise ContentError("regions", f"at most {MAX_REGIONS} regions")
    seen: set[str] = set()
    for index, region in enumerate(layout.regions):
        where = f"regions[{index}]"
        if region.id in seen:
            raise ContentError(f"{where}.id", f"duplicate region {region.id!r}")
        seen.add(region.id)
        if region.w <= 0 or region.h <= 0:
            raise ContentError(where, "a region has a width and a height")
        if min(region.x, region.y) < 0 or region.x + region.w > 100 or region.y + region.h > 100:
            raise ContentError(where, "a region lies within the screen (0 to 100 per cent)")


def check_item(item: Item) -> None:
    if item.kind is ItemKind.NOTICE and not item.text:
        raise ContentError("text", "a notice needs its text")
    if item.kind in (ItemKind.IMAGE, ItemKind.VIDEO) and not item.url:
        raise ContentError("url", f"an {item.kind} needs its url")
    if item.kind is not ItemKind.QUEUE and item.services:
        raise ContentError("services", "only a queue widget lists services")


def check_group(group: Group, areas: Iterable[str], floors: Iterable[int]) -> None:
    known_areas, known_floors = set(areas), set(floors)
    for area in sorted(group.areas - known_areas):
        raise ContentError("areas", f"unknown area {area!r}")
    for floor in sorted(group.floors - known_floors):
        raise ContentError("floors", f"the hall has no floor {floor}")
    for kind in sorted(group.kinds - SCREEN_KINDS):
        raise ContentError("kinds", f"{kind!r} shows no signage; use {sorted(SCREEN_KINDS)}")


def check_schedule(schedule: Schedule, content: Content) -> None:
    """Against the content it refers to, which must exist."""
    if schedule.group not in content.groups:
        raise ContentError("group", f"unknown screen group {schedule.group!r}")
    layout = content.layouts.get(schedule.layout)
    if layout is None:
        raise ContentError("layout", f"unknown layout {schedule.layout!r}")
    if (schedule.start is None) != (schedule.end is None):
        raise ContentError("start", "give both start and end, or neither for the whole day")
    if schedule.start is not None and schedule.start == schedule.end:
        raise ContentError("end", "an empty time range; leave both out for the whole day")
    if schedule.start_date and schedule.end_date and schedule.end_date < schedule.start_date:
        raise ContentError("end_date", "before start_date")
    bad_days = sorted(day for day in schedule.weekdays if not 1 <= day <= 7)
    if bad_days:
        raise ContentError("weekdays", f"{bad_days[0]} is no ISO weekday (1 to 7)")
    for region_id, item_ids in schedule.playlist.items():
        region = layout.region(region_id)
        where = f"playlist.{region_id}"
        if region is None:
            raise ContentError(where, f"layout {layout.id!r} has no region {region_id!r}")
        if len(item_ids) > MAX_PLAYLIST:
            raise ContentError(where, f"at most {MAX_PLAYLIST} items")
        for item_id in item_ids:
            item = content.items.get(item_id)
            if item is None:
                raise ContentError(where, f"unknown item {item_id!r}")
            if item.kind not in PLAYS[region.kind]:
                raise ContentError(where, f"a {region.kind} region cannot play "
                                          f"the {item.kind} {item_id!r}")


def users_of_layout(content: Content, layout_id: str) -> list[str]:
    return sorted(s.id for s in content.schedules.values() if s.layout == layout_id)


def users_of_group(content: Content, group_id: str) -> list[str]:
    return sorted(s.id for s in content.schedules.values() if s.group == group_id)


def users_of_item(content: Content, item_id: str) -> list[str]:
    return sorted(s.id for s in content.schedules.values()
                  if any(item_id in ids for ids in s.playlist.values()))
