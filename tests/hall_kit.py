"""A hall server's parts for tests: the small test hall on a clock that moves
only when told, over a real database."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from hall.bus import EventBus
from hall.config import HallConfig
from hall.pii import DataKey
from hall.runtime import HallRuntime
from hall.server import HallServer
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


async def serving(
    pool: asyncpg.Pool, clock: ManualClock | None = None, config: HallConfig = CONFIG
) -> HallServer:
    """A whole hall server (runtime, stores, auth, stream), started."""
    server = HallServer.assemble(config, pool, clock or ManualClock(), DataKey.generate())
    await server.start()
    return server
