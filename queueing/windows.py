"""A window's live state, kept by the engine and changed only by events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from queueing.lanes import Lane
from queueing.layout import PauseReason, Window
from queueing.strategies import Strategy


class WindowState(StrEnum):
    """What the status wall shows for a window (W1)."""

    NOT_LOGGED_IN = "not_logged_in"
    IDLE = "idle"
    CALLING = "calling"
    SERVING = "serving"
    PAUSED = "paused"
    CLOSED = "closed"


class Anomaly(StrEnum):
    """Attendance anomalies (考勤异常), derived from the clock."""

    LATE_LOGIN = "late_login"
    """Nobody logged in although the window opened a while ago."""
    ABSENT = "absent"
    """Logged in earlier today, logged out, and not back in working hours."""
    OVERLONG_PAUSE = "overlong_pause"


@dataclass(slots=True)
class Pause:
    reason: PauseReason
    message: str
    since: datetime


@dataclass(slots=True)
class WindowRuntime:
    config: Window
    services: dict[str, int]
    strategy: Strategy
    staff: str | None = None
    closed: bool = False
    pause: Pause | None = None
    current: str | None = None
    """The ticket being called or served here."""
    held: dict[str, None] = field(default_factory=dict)
    """Tickets parked here while the citizen fetches something (ordered set)."""
    own: Lane = field(default_factory=Lane)
    """Tickets sent to this window by name: transfers and released holds."""
    logged_in_today: bool = False
    logged_out_at: datetime | None = None
    anomalies: dict[Anomaly, datetime] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def is_open(self) -> bool:
        """Takes tickets for its services (Q4): staffed, not paused or closed."""
        return self.staff is not None and not self.closed and self.pause is None
