"""The ``[appointments]`` table of the hall configuration (Q1, M1).

Kept out of ``hall.config`` so that module only nests this table and cross-checks
it: the shape, the defaults and the built types live here, next to the slot
calendar that uses them. Mistakes come back through ``hall.config``'s key paths
(``appointments.services[0].capacity: ...``) like every other table's.

::

    [appointments]
    blackout_days = [2026-10-01, "2026-10-02"]   # no slots at all on these days
    late_grace_minutes = 15      # checked in this late: still an appointment
    beyond_grace = "walk_in"     # later: "walk_in" (an ordinary ticket) or "refuse"
    bookings_per_citizen = 3     # open bookings per phone number or ID number

    [appointments.mobile]
    tickets_per_phone_per_day = 3

    [[appointments.services]]
    service = "biz"
    slot_minutes = 30
    capacity = 4                 # bookings per slot
    days_ahead = 14              # today .. today + 14
    cutoff_minutes = 60          # no booking within an hour of the slot
    [appointments.services.opening]   # omitted: the service's own hours
    mon = ["09:00-12:00", "13:30-17:00"]
    sat = ["09:00-12:00"]
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator

from queueing.hours import Hours, parse_interval
from queueing.layout import Layout

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""Keys of an ``opening`` table, in ``datetime.weekday()`` order."""

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
BeyondGrace = Literal["walk_in", "refuse"]

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _service_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError("must be a service id")
    return value


def _day(value: object) -> date:
    """TOML has dates of its own; a quoted ISO date is accepted too, since that is
    how most people write one."""
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("must be a date like 2026-10-01")


def _interval(value: object) -> tuple[time, time]:
    if not isinstance(value, str):
        raise ValueError("must be a string like '09:00-12:00'")
    return parse_interval(value)


def _fit_together(intervals: list[tuple[time, time]]) -> list[tuple[time, time]]:
    """The engine's Hours judges order and overlap, as for the hall's own hours."""
    Hours(tuple(intervals), frozenset(range(7)))
    return sorted(intervals)


_Day = Annotated[date, PlainValidator(_day)]
_Intervals = Annotated[
    list[Annotated[tuple[time, time], PlainValidator(_interval)]],
    AfterValidator(_fit_together),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AppointmentServiceTable(_Strict):
    service: Annotated[str, AfterValidator(_service_id)]
    slot_minutes: int = Field(default=30, ge=5, le=480)
    capacity: int = Field(ge=1, le=10_000)
    opening: dict[Weekday, _Intervals] | None = None
    days_ahead: int = Field(default=14, ge=0, le=366)
    cutoff_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)
    blackout_days: list[_Day] = Field(default_factory=list)


class MobileTable(_Strict):
    tickets_per_phone_per_day: int = Field(default=3, ge=0, le=100)


class AppointmentsTable(_Strict):
    blackout_days: list[_Day] = Field(default_factory=list)
    late_grace_minutes: float = Field(default=15.0, ge=0, le=24 * 60)
    beyond_grace: BeyondGrace = "walk_in"
    bookings_per_citizen: int = Field(default=3, ge=1, le=100)
    services: list[AppointmentServiceTable] = Field(default_factory=list)
    mobile: MobileTable = Field(default_factory=MobileTable)


@dataclass(frozen=True, slots=True)
class SlotRule:
    """How one service is bookable."""

    service: str
    slot_minutes: int
    capacity: int
    opening: Mapping[int, tuple[tuple[time, time], ...]]
    """By ``datetime.weekday()``; a weekday not here has no slots."""
    days_ahead: int
    cutoff: timedelta
    blackout_days: frozenset[date]

    @property
    def slot(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)


@dataclass(frozen=True, slots=True)
class AppointmentConfig:
    """The defaults keep appointments working in a hall without the table: the
    backend's imported bookings check in, with the default late policy, and no
    service is bookable from the hall's own pages."""

    services: Mapping[str, SlotRule] = field(default_factory=lambda: MappingProxyType({}))
    blackout_days: frozenset[date] = frozenset()
    late_grace: timedelta = timedelta(minutes=15)
    beyond_grace: BeyondGrace = "walk_in"
    bookings_per_citizen: int = 3
    tickets_per_phone_per_day: int = 3


def cross_check(table: AppointmentsTable, services: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(key path, problem) for services the hall does not have or lists twice."""
    known = set(services)
    first: dict[str, int] = {}
    for index, item in enumerate(table.services):
        key = f"appointments.services[{index}].service"
        if item.service not in known:
            yield key, f"unknown service {item.service!r}"
        elif item.service in first:
            yield key, (f"service {item.service!r} is bookable already "
                        f"(appointments.services[{first[item.service]}])")
        first.setdefault(item.service, index)


def build(table: AppointmentsTable, layout: Layout) -> AppointmentConfig:
    """Checked input only (``cross_check`` found nothing)."""
    return AppointmentConfig(
        services=MappingProxyType({
            item.service: _rule(item, layout) for item in table.services
        }),
        blackout_days=frozenset(table.blackout_days),
        late_grace=timedelta(minutes=table.late_grace_minutes),
        beyond_grace=table.beyond_grace,
        bookings_per_citizen=table.bookings_per_citizen,
        tickets_per_phone_per_day=table.mobile.tickets_per_phone_per_day,
    )


def _rule(item: AppointmentServiceTable, layout: Layout) -> SlotRule:
    if item.opening is not None:
        opening = {WEEKDAYS.index(day): tuple(spans) for day, spans in item.opening.items()}
    else:
        hours = layout.services[item.service].hours
        opening = dict.fromkeys(sorted(hours.weekdays), tuple(sorted(hours.intervals)))
    return SlotRule(
        service=item.service,
        slot_minutes=item.slot_minutes,
        capacity=item.capacity,
        opening=MappingProxyType({day: spans for day, spans in opening.items() if spans}),
        days_ahead=item.days_ahead,
        cutoff=timedelta(minutes=item.cutoff_minutes),
        blackout_days=frozenset(item.blackout_days),
    )
