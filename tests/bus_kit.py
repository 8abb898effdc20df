"""A hall server with its device link on a real Mosquitto and PostgreSQL: what every
device-bus test starts from, whatever devices its hall lists."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from hall.config import HallConfig
from hall.device_link import DeviceLink
from hall.server import HallServer
from tests.hall_kit import serving
from tests.mqtt_kit import Mosquitto


@dataclass
class Bus:
    server: HallServer
    link: DeviceLink
    broker: Mosquitto


@contextlib.asynccontextmanager
async def hall_on_bus(pool: asyncpg.Pool, broker: Mosquitto, config: HallConfig
                      ) -> AsyncIterator[Bus]:
    server = await serving(pool, config=config)
    link = DeviceLink(server, broker.url)
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.connected.wait(), 5)
        yield Bus(server, link, broker)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await link.stop()
        await server.stop()
