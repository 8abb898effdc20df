"""The pure queueing and window-status engine: no I/O, no clock, deterministic.

Named ``queueing`` and not ``queue``: a top-level ``queue`` package would shadow
the standard library module that asyncio's thread pool and logging import.
"""

from queueing.codec import CodecError, event_from_dict, event_to_dict
from queueing.engine import Engine, Estimate
from queueing.errors import Reason, Rejected
from queueing.events import EVENT_TYPES, Event
from queueing.hours import ALWAYS, Hours
from queueing.layout import (
    Area,
    AttendancePolicy,
    Layout,
    LayoutError,
    NoShowPolicy,
    Package,
    PauseReason,
    Service,
    Window,
)
from queueing.strategies import RULES, StrategyError, StrategySpec
from queueing.tickets import Source, Status, Ticket, TimeNode
from queueing.windows import Anomaly, WindowState

__all__ = [
    "ALWAYS",
    "EVENT_TYPES",
    "RULES",
    "Anomaly",
    "Area",
    "AttendancePolicy",
    "CodecError",
    "Engine",
    "Estimate",
    "Event",
    "Hours",
    "Layout",
    "LayoutError",
    "NoShowPolicy",
    "Package",
    "PauseReason",
    "Reason",
    "Rejected",
    "Service",
    "Source",
    "Status",
    "StrategyError",
    "StrategySpec",
    "Ticket",
    "TimeNode",
    "Window",
    "WindowState",
    "event_from_dict",
    "event_to_dict",
]
