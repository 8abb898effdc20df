"""How a long-running server uses Python's cycle collector.

A server keeps most of what it builds for as long as it runs: hall layouts,
configurations, the restored day, tickets until the day ends. CPython's full
collection walks every one of those objects each time, and with a hundred
halls in one process each walk stopped every hall for 0.1-1 s, every few
seconds at peak (bench/city.py). So whatever survives a full collection is
frozen (``gc.freeze``): later walks see only what is newer. The cost is that a
frozen object which later becomes part of a garbage cycle is not reclaimed
until it is thawed, so once a day, at the quiet hour the halls roll over in,
everything is thawed, collected once and frozen again.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()


def install() -> None:
    """Freeze what the server has built so far, and the survivors of every full
    collection from now on."""
    gc.freeze()
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def seconds_until(hour: int, timezone: ZoneInfo, now: datetime | None = None) -> float:
    """Until the next ``hour`` o'clock, local time."""
    now = now or datetime.now(timezone)
    due = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if due <= now:
        due += timedelta(days=1)
    return (due - now).total_seconds()


def sweep() -> float:
    """Thaw, collect everything once, freeze again; returns the seconds it took."""
    began = time.perf_counter()
    gc.unfreeze()
    collected = gc.collect()
    gc.freeze()
    seconds = time.perf_counter() - began
    log.info("nightly full collection: %d objects reclaimed in %.2f s", collected, seconds)
    return seconds


async def sweep_nightly(hour: int, timezone: ZoneInfo) -> None:
    """For as long as the server runs; ``hour`` is the halls' rollover hour."""
    while True:
        await asyncio.sleep(seconds_until(hour, timezone))
        sweep()
