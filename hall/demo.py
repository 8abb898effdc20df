"""Citizens and clerks for a demo hall that has no devices yet.

Citizens arrive at random and take tickets for popular services; every window
is staffed and works through its queue with realistic service times. It
drives the hall through the same ``HallRuntime.apply`` the API will use, so
the demo exercises the real path, not a shortcut.

With simulated devices on the bus (``devices.simulator``), the demo leaves
them the windows their call terminals drive (``skip_windows``: two clerks at
one window would steal each other's citizens) and, with
``arrivals_per_hour=0``, the citizens to the kiosks.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Collection
from typing import Any

from hall.committer import CommitFailed
from hall.runtime import HallRuntime, Unavailable
from queueing import Rejected, Source

log = logging.getLogger(__name__)

SOURCES = [Source.WALK_IN] * 5 + [Source.ID_CARD] * 3 + [Source.PHONE, Source.MOBILE]


class DemoActivity:
    def __init__(
        self,
        runtime: HallRuntime,
        *,
        seed: int = 7,
        arrivals_per_hour: float = 240,
        skip_windows: Collection[str] = (),
    ):
        self.runtime = runtime
        self.rng = random.Random(seed)
        self.arrivals_per_hour = arrivals_per_hour
        self.skip_windows = frozenset(skip_windows)

    async def run(self) -> None:
        layout = self.runtime.config.layout
        windows = [w for w in layout.windows if w not in self.skip_windows]
        for number, window_id in enumerate(layout.windows, start=1):
            if window_id in windows and self.runtime.engine.window(window_id).staff is None:
                await self._try("login", window_id, f"staff-{number:03d}")
        async with asyncio.TaskGroup() as group:
            if self.arrivals_per_hour > 0:
                group.create_task(self._citizens())
            for window_id in windows:
                group.create_task(self._clerk(window_id))

    async def _citizens(self) -> None:
        services = list(self.runtime.config.layout.services.values())
        while True:
            gap = self.rng.expovariate(self.arrivals_per_hour / 3600.0)
            await asyncio.sleep(self.runtime.clock.seconds(gap))
            service = self.rng.choice(services)
            source = self.rng.choice(SOURCES)
            await self._try("issue", service.id, source)

    async def _clerk(self, window_id: str) -> None:
        clock = self.runtime.clock
        while True:
            if self.runtime.engine.current_ticket(window_id) is not None:
                await self._try("finish", window_id)
            if not await self._try("call_next", window_id):
                await asyncio.sleep(clock.seconds(60))
                continue
            await asyncio.sleep(clock.seconds(self.rng.uniform(20, 90)))
            await self._try("start", window_id)
            engine = self.runtime.engine
            ticket = engine.current_ticket(window_id)
            minutes = engine.average_service_minutes(ticket.service) if ticket else 5.0
            await asyncio.sleep(clock.seconds(self.rng.uniform(0.5, 1.5) * minutes * 60))
            await self._try("finish", window_id)

    async def _try(self, operation: str, *args: Any) -> bool:
        try:
            await self.runtime.execute(operation, *args)
        except (Rejected, Unavailable, CommitFailed) as refused:
            log.debug("demo: %s", refused)
            return False
        return True
