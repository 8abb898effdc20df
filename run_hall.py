"""Start a SmartHall server.

    python run_hall.py                       the hall in config/demo-hall.toml
    python run_hall.py --demo                ... with simulated citizens and clerks
    python run_hall.py --config my-hall.toml --port 8081

Ctrl-C (SIGINT) or SIGTERM stops it cleanly. Exit codes: 0 after a clean stop,
2 for a configuration or start-up problem, which is printed with its cause.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
from aiohttp import web

from hall import logs
from hall.broker import Broker, start_broker
from hall.clock import Clock, SimulatedClock, WallClock
from hall.config import ConfigError, HallConfig, load_hall_config
from hall.demo import DemoActivity
from hall.device_link import DeviceLink
from hall.http import build_app
from hall.migrate import migrate
from hall.pg import Database, ensure_database, open_database
from hall.pii import DataKey
from hall.server import HallServer

log = logging.getLogger("smarthall")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Run a SmartHall server.")
    parser.add_argument("--config", default="config/demo-hall.toml", help="hall TOML file")
    parser.add_argument("--host", help="address to listen on (default: from the config)")
    parser.add_argument("--port", type=int, help="port (default: $HALL_PORT or the config)")
    parser.add_argument(
        "--demo", action="store_true", help="simulate citizens and clerks on a simulated clock"
    )
    parser.add_argument(
        "--speed", type=float, default=10.0, help="demo clock speed, hall seconds per second"
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text",
        help="json: one object per line, for a log collector",
    )
    return parser.parse_args(argv)


def demo_start(config: HallConfig) -> datetime:
    """The next opening of the hall, so a demo started at night still shows a
    working day."""
    hours = config.layout.working_hours
    day = datetime.now(config.timezone)
    while day.weekday() not in hours.weekdays:
        day += timedelta(days=1)
    first = min(start for start, _ in hours.intervals)
    return day.replace(hour=first.hour, minute=first.minute, second=0, microsecond=0)


async def open_storage(config: HallConfig, demo: bool) -> tuple[Database, asyncpg.Pool]:
    """Connect (or start the embedded server), migrate, and hand out a pool."""
    database = open_database(config.database_url)
    url = database.url
    if database.embedded is not None:
        name = "smarthall_demo" if demo else "smarthall"
        url = await ensure_database(database.url, name, fresh=demo)
    pool = await asyncpg.create_pool(url, min_size=2, max_size=10)
    async with pool.acquire() as connection:
        await migrate(connection)
    return database, pool


async def serve(config: HallConfig, args: argparse.Namespace) -> int:
    clock: Clock = (
        SimulatedClock(demo_start(config), args.speed) if args.demo else WallClock(config.timezone)
    )
    try:
        database, pool = await open_storage(config, args.demo)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"error: cannot open the hall's database: {exc}", file=sys.stderr)
        return 2
    server = HallServer.assemble(config, pool, clock, DataKey.load())
    broker: Broker | None = None
    try:
        await server.start()
        mqtt_url = os.environ.get("HALL_MQTT_URL")
        if not mqtt_url:
            broker = await start_broker(Path("var") / "mqtt")
            mqtt_url = broker.url
        link = DeviceLink(server, mqtt_url)
        code = await listen(config, args, server, link)
    finally:
        await server.stop()
        if broker is not None:
            await broker.stop()
        await pool.close()
        database.close()
    if code == 0:
        print("SmartHall: stopped", flush=True)
    return code


async def listen(
    config: HallConfig, args: argparse.Namespace, server: HallServer, link: DeviceLink
) -> int:
    host = args.host or config.http_host
    port = args.port or int(os.environ.get("HALL_PORT", config.http_port))
    runtime = server.runtime
    runner = web.AppRunner(build_app(server), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        print(f"error: cannot listen on {host}:{port}: {exc.strerror}; "
              "set HALL_PORT or --port to another port", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    background = [asyncio.create_task(runtime.keep_time()), asyncio.create_task(link.run())]
    if args.demo:
        background.append(asyncio.create_task(DemoActivity(runtime).run()))
    base = f"http://{host}:{port}"
    layout = config.layout
    print(f"SmartHall: {layout.name} ({len(layout.windows)} windows, "
          f"{len(layout.services)} services) is running", flush=True)
    if args.demo:
        print(f"  demo: simulated citizens and clerks, hall clock from "
              f"{runtime.clock.now():%Y-%m-%d %H:%M} at {args.speed:g}x", flush=True)
    print(f"  hall now:  {base}/api/v1/hall\n  API:       {base}/api/v1/openapi.json\n"
          f"  devices:   {link.url} (MQTT, topics hall/{config.layout.hall_id}/<device>/...)\n"
          f"  health:    {base}/healthz\n  Ctrl-C stops", flush=True)
    await stop.wait()
    print("SmartHall: stopping", flush=True)
    for task in background:
        task.cancel()
    for task in background:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    try:
        config = load_hall_config(args.config)
    except ConfigError as exc:
        print(f"error: the configuration cannot be used:\n{exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot read {args.config}: {exc.strerror}", file=sys.stderr)
        return 2
    return asyncio.run(serve(config, args))


if __name__ == "__main__":
    sys.exit(main())
