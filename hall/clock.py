"""Where the hall's time comes from.

The engine never reads a clock; the server asks one of these. A simulated
clock lets the demo run a working day at any hour and any speed.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo


class Clock(Protocol):
    def now(self) -> datetime: ...

    def seconds(self, hall_seconds: float) -> float:
        """Real seconds that pass while the hall's clock moves this far."""
        ...


class WallClock:
    def __init__(self, timezone: ZoneInfo) -> None:
        self.timezone = timezone

    def now(self) -> datetime:
        return datetime.now(self.timezone)

    def seconds(self, hall_seconds: float) -> float:
        return hall_seconds


class SimulatedClock:
    """Hall time that starts at ``start`` and runs ``speed`` times faster."""

    def __init__(self, start: datetime, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.start = start
        self.speed = speed
        self._origin = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._origin) * self.speed
        return self.start + timedelta(seconds=elapsed)

    def seconds(self, hall_seconds: float) -> float:
        return hall_seconds / self.speed
