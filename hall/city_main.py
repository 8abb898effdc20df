"""``run_hall.py city``: one city process, from its city file to a clean stop."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys

import asyncpg
from aiohttp import web

from hall import collector
from hall.city import CityProcess, writers_pool
from hall.city_config import CityConfig, load_city_config
from hall.config import ConfigError
from hall.migrate import migrate
from hall.pg import open_database
from hall.pii import DataKey, DataKeyError

log = logging.getLogger("smarthall.city")


def city_main(args: argparse.Namespace) -> int:
    try:
        config = load_city_config(args.config)
    except ConfigError as exc:
        print(f"error: the city configuration cannot be used:\n{exc}", file=sys.stderr)
        return 2
    if not config.mqtt_url:
        print(f"error: {args.config}: a city needs a shared broker: set [mqtt] url or "
              "HALL_MQTT_URL", file=sys.stderr)
        return 2
    if args.advertise:
        config = dataclasses.replace(config, advertise=args.advertise.rstrip("/"))
    try:
        data_key = DataKey.load()
    except DataKeyError as exc:
        print(f"error: the data key cannot be used: {exc}", file=sys.stderr)
        return 2
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    return asyncio.run(run_city(config, name, args.port or config.http_port, data_key))


async def run_city(config: CityConfig, name: str, port: int, data_key: DataKey) -> int:
    database = open_database(config.database_url)
    try:
        pool = await asyncpg.create_pool(database.url, min_size=2, max_size=config.pool_size)
        async with pool.acquire() as connection:
            await migrate(connection)
        writers = await writers_pool(database.url, config.writers)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"error: cannot open the city's database: {exc}", file=sys.stderr)
        database.close()
        return 2
    assert config.mqtt_url is not None
    process = CityProcess(config, pool, writers, database.url, config.mqtt_url, name, data_key)
    runner = web.AppRunner(process.build_app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, config.http_host, port, reuse_address=True).start()
    except OSError as exc:
        print(f"error: cannot listen on {config.http_host}:{port}: {exc.strerror}",
              file=sys.stderr)
        await runner.cleanup()
        await writers.close()
        await pool.close()
        database.close()
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    leading = asyncio.create_task(process.leadership.run(), name="leadership")
    collector.install()
    first = config.halls[0]
    sweeping = asyncio.create_task(
        collector.sweep_nightly(first.rollover_hour, first.timezone), name="gc-sweep")
    print(f"SmartHall city {config.name!r}: process {name} on "
          f"http://{config.http_host}:{port} competing for {len(config.halls)} halls",
          flush=True)
    await stop.wait()
    print(f"SmartHall city: process {name} stopping", flush=True)
    await process.leadership.stop(leading)
    sweeping.cancel()
    await process.notify_listener.close()
    await runner.cleanup()
    await writers.close()
    await pool.close()
    database.close()
    print(f"SmartHall city: process {name} stopped", flush=True)
    return 0
