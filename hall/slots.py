"""The slot calendar (Q1): which time slots a service offers on a day, and why a
given moment cannot be booked. Pure: no storage, no clock; times are aware
datetimes in the hall's zone.

A slot starts at the beginning of an opening interval or a whole number of slot
lengths after it, and lies wholly inside the interval: 09:00-12:00 in 30-minute
slots is 09:00, 09:30 ... 11:30.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hall.appointment_config import AppointmentConfig, SlotRule


@dataclass(frozen=True, slots=True)
class Slot:
    start: datetime
    end: datetime


class NotBookable(Exception):
    """Why a slot cannot be booked, with a stable code for the API:
    ``unknown_service``, ``not_a_slot``, ``blackout_day``, ``too_far_ahead``,
    ``booking_closed``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_blackout(config: AppointmentConfig, rule: SlotRule, day: date) -> bool:
    return day in config.blackout_days or day in rule.blackout_days


def day_slots(config: AppointmentConfig, rule: SlotRule, day: date, zone: ZoneInfo) -> list[Slot]:
    """Every slot of the day, bookable now or not; none on a blackout day."""
    if is_blackout(config, rule, day):
        return []
    slots = []
    for start_time, end_time in rule.opening.get(day.weekday(), ()):
        start = datetime.combine(day, start_time, zone)
        end = datetime.combine(day, end_time, zone)
        while start + rule.slot <= end:
            slots.append(Slot(start, start + rule.slot))
            start += rule.slot
    return slots


def last_bookable_day(rule: SlotRule, now: datetime, zone: ZoneInfo) -> date:
    return now.astimezone(zone).date() + timedelta(days=rule.days_ahead)


def check_bookable(
    config: AppointmentConfig, service: str, start: datetime, now: datetime, zone: ZoneInfo
) -> Slot:
    """The slot starting at ``start``, or NotBookable saying why not."""
    rule = config.services.get(service)
    if rule is None:
        raise NotBookable("unknown_service", f"service {service!r} takes no appointments")
    local = start.astimezone(zone)
    day = local.date()
    if is_blackout(config, rule, day):
        raise NotBookable("blackout_day", f"no appointments on {day.isoformat()}")
    slot = next((s for s in day_slots(config, rule, day, zone) if s.start == local), None)
    if slot is None:
        raise NotBookable("not_a_slot", f"{local:%Y-%m-%d %H:%M} is not a slot of {service!r}")
    if day > last_bookable_day(rule, now, zone):
        raise NotBookable(
            "too_far_ahead", f"{service!r} is bookable at most {rule.days_ahead} days ahead")
    if slot.start - rule.cutoff < now:
        raise NotBookable(
            "booking_closed",
            f"booking closes {rule.cutoff.total_seconds() / 60:g} minutes before the slot",
        )
    return slot
