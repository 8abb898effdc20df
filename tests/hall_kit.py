"""A hall server's parts for tests: the small test hall on a clock that moves
only when told, over a real database."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from hall.bus import EventBus
from hall.config import HallConfig
from hall.runtime import HallRuntime
from tests.engine_kit import OPENING, small_layout


class ManualClock:
    def __init__(self, start: datetime = OPENING) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def seconds(self, hall_seconds: float) -> float:
        return hall_seconds / 1000


CONFIG = HallConfig(layout=small_layout(), tickets={})


async def started(
    pool: asyncpg.Pool, clock: ManualClock | None = None, config: HallConfig = CONFIG
) -> HallRuntime:
    runtime = HallRuntime(config, clock or ManualClock(), EventBus(), pool)
    await runtime.start()
    return runtime
