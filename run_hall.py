"""Start a SmartHall server.

    python run_hall.py                       the hall in config/demo-hall.toml
    python run_hall.py --demo                ... with simulated citizens and clerks
    python run_hall.py --config my-hall.toml --port 8081
    python run_hall.py simulate --mqtt-url mqtt://127.0.0.1:1883
                                             the hall's devices, simulated, against the
                                             broker of a running hall server
    python run_hall.py agent --config config/agent-kiosk-1.toml
                                             the edge agent: a kiosk or window PC's real
                                             hardware on the hall's device bus
    python run_hall.py city --config config/city-demo.toml --name a
                                             one of several processes sharing the halls
                                             of a city (hall/city.py, docs/operations.md)

In the demo, citizens take tickets at simulated kiosks and the clerks of the
windows with a call terminal work at simulated terminals, all on the MQTT
bus as real devices would (devices/simulator.py); the clerks of the other
windows are simulated in-process (hall/demo.py).

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
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
from aiohttp import web

from devices.broker_url import BrokerAddress
from devices.client import stop_task
from devices.simulator import SimService, Simulation
from hall import collector, logs
from hall.auth import verify_password
from hall.broker import Broker, start_broker
from hall.clock import Clock, SimulatedClock, WallClock
from hall.config import ConfigError, HallConfig, load_hall_config
from hall.demo import DemoActivity
from hall.device_link import DeviceLink
from hall.http import build_app
from hall.migrate import migrate
from hall.pg import Database, ensure_database, open_database
from hall.pii import DataKey, DataKeyError
from hall.server import HallServer

log = logging.getLogger("smarthall")

DEMO_STAFF_PASSWORD = "hall-demo-2026"
"""The published password of the demo's staff accounts (config/demo-hall.toml)."""

DEMO_KIOSK_TOKEN = "demo-kiosk-f1-2026"
"""The published device token of the demo's first-floor kiosk page (config/demo-hall.toml)."""

DEMO_PRIORITY_PASSWORDS = (
    ("elderly", "700001"), ("disabled", "700002"), ("military", "700003"),
    ("maternal", "700004"),
)
"""The published passwords of the demo hall's priority groups, which its simulated
citizens type now and then (config/demo-hall.toml keeps only their hashes)."""

KIOSK_RATE = 50.0
"""Citizens per hall hour at each simulated kiosk: with the demo's three kiosks, about
what its windows can serve."""

DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    simulate = commands.add_parser(
        "simulate",
        help="run the hall's devices, simulated, against an MQTT broker",
        description="Run the hall's [[devices]] as simulated devices on an MQTT broker: "
        "kiosks take tickets, call terminals call and serve, screens follow. Point it at "
        "the broker of a running hall server that was not started with --demo, which runs "
        "these devices itself (two clients with one device id take each other's place).",
    )
    simulate.add_argument("--config", default="config/demo-hall.toml", help="hall TOML file")
    simulate.add_argument(
        "--mqtt-url", default=os.environ.get("HALL_MQTT_URL") or DEFAULT_MQTT_URL,
        help=f"the broker (default: $HALL_MQTT_URL or {DEFAULT_MQTT_URL})",
    )
    simulate.add_argument(
        "--speed", type=float, default=1.0,
        help="hall seconds per real second; match the server's clock: 1 for a server on "
        "the wall clock, the --speed of a --demo server (default: 1)",
    )
    simulate.add_argument(
        "--kiosk-rate", type=float, default=KIOSK_RATE,
        help="citizens per hall hour at each kiosk (default: %(default)g)",
    )
    simulate.add_argument(
        "--staff-password", default=os.environ.get("HALL_STAFF_PASSWORD", DEMO_STAFF_PASSWORD),
        help="password of the config's staff accounts, for the call terminals "
        "(default: $HALL_STAFF_PASSWORD or the demo's)",
    )
    simulate.add_argument(
        "--device-password", default=os.environ.get("HALL_DEVICE_PASSWORD"),
        help="MQTT password of every device, for a broker that checks them "
        "(default: $HALL_DEVICE_PASSWORD; none for an anonymous broker)",
    )
    simulate.add_argument("--seed", type=int, default=7, help="random seed")
    simulate.add_argument("--log-level", default="INFO")
    simulate.add_argument("--log-format", choices=("text", "json"), default="text")
    agent = commands.add_parser(
        "agent",
        help="bridge this PC's hardware (printer, card reader, LED, keypads) to the device bus",
        description="Open the hardware an agent file lists and connect each device to the "
                    "hall's MQTT broker (drivers/agent.py).",
    )
    agent.add_argument("--config", required=True, help="agent TOML file")
    agent.add_argument("--mqtt-url", default=os.environ.get("HALL_MQTT_URL"),
                       help="overrides the file's [agent] mqtt_url (env HALL_MQTT_URL)")
    agent.add_argument("--log-level", default="INFO")
    agent.add_argument("--log-format", choices=("text", "json"), default="text")
    city = commands.add_parser(
        "city",
        help="lead some of a city's halls, sharing them with the other city processes",
        description="Compete for the halls of a city file on its shared database and broker "
                    "(advisory locks, hall/leadership.py) and serve the ones this process "
                    "leads, each on its own port; the city port lists and routes them.",
    )
    city.add_argument("--config", required=True, help="city TOML file")
    city.add_argument("--name", help="this process's name (default: <host>-<pid>)")
    city.add_argument("--port", type=int, help="the city port (default: the file's)")
    city.add_argument(
        "--advertise", default=os.environ.get("HALL_ADVERTISE"),
        help="scheme and host the others reach this machine's hall ports at, e.g. "
             "http://10.0.0.5 (default: $HALL_ADVERTISE or the file's [http] advertise)")
    city.add_argument("--log-level", default="INFO")
    city.add_argument("--log-format", choices=("text", "json"), default="text")
    return parser.parse_args(argv)


def agent_main(args: argparse.Namespace) -> int:
    """Loads nothing of the hall's own configuration: a kiosk PC has only its agent file."""
    from drivers.agent import run_agent
    from drivers.agent_config import AgentConfigError, load_agent_config

    try:
        config = load_agent_config(Path(args.config), mqtt_url=args.mqtt_url)
    except AgentConfigError as exc:
        print(f"error: the agent configuration cannot be used:\n{exc}", file=sys.stderr)
        return 2
    return asyncio.run(run_agent(config))


def staff_accounts(config: HallConfig, password: str) -> list[tuple[str, str]]:
    """The clerks (role staff) of the config whose password is ``password``: the hall
    checks passwords at terminal.login, so only they can work a simulated terminal."""
    return [
        (entry.id, password) for entry in config.auth.staff
        if entry.role == "staff" and verify_password(entry.password_hash, password)
    ]


def kiosk_services(config: HallConfig) -> list[SimService]:
    """Every service a window serves, weighted by how many citizens an hour the windows
    can serve of it (each window's time shared among its services): demand follows
    capacity, so that no queue grows all day while others stay empty."""
    capacity: dict[str, float] = dict.fromkeys(config.layout.services, 0.0)
    services = config.layout.services
    for window in config.layout.windows.values():
        for service_id in window.services:
            minutes = max(services[service_id].avg_service_minutes, 1.0)
            capacity[service_id] += 60 / minutes / len(window.services)
    return [
        SimService(s.id, capacity[s.id], s.avg_service_minutes)
        for s in services.values() if capacity[s.id] > 0
    ]


def build_simulation(
    config: HallConfig,
    mqtt_url: str,
    speed: float,
    *,
    staff_password: str = DEMO_STAFF_PASSWORD,
    device_password: str | None = None,
    arrivals_per_hour: float = KIOSK_RATE,
    seed: int = 7,
) -> Simulation:
    """The config's [[devices]], simulated; call terminals get the clerks that can log in."""
    return Simulation(
        config.layout.hall_id,
        mqtt_url,
        [(d.id, d.kind, d.window, d.screen) for d in config.devices],
        kiosk_services(config),
        staff_accounts(config, staff_password),
        speed=speed,
        seed=seed,
        arrivals_per_hour=arrivals_per_hour,
        device_password=device_password,
        priority=[(group, password) for group, password in DEMO_PRIORITY_PASSWORDS
                  if group in config.priority_groups],
    )


def describe(simulation: Simulation) -> str:
    kinds = Counter(str(device.kind) for device in simulation.devices)
    windows = ", ".join(sorted(simulation.driven_windows)) or "none"
    return (f"{len(simulation.devices)} simulated devices "
            f"({', '.join(f'{n} {kind}' for kind, n in kinds.items())}); "
            f"call terminals at work: {windows}")


def summary(simulation: Simulation) -> str:
    stats = simulation.stats
    return (f"{len(stats.issued)} tickets taken at kiosks, {stats.called} called, "
            f"{stats.served} served, {stats.skipped} no-shows, {stats.ratings} ratings, "
            f"{stats.retried.total()} requests retried")


async def report(simulation: Simulation, every: float = 60.0) -> None:
    """Now and then, what the simulated devices did (their own logs are mostly debug)."""
    while True:
        await asyncio.sleep(every)
        log.info("simulated devices so far: %s", summary(simulation))


async def simulate(config: HallConfig, args: argparse.Namespace) -> int:
    """``run_hall.py simulate``: the devices alone, against any broker, until Ctrl-C."""
    simulation = build_simulation(
        config, args.mqtt_url, args.speed, staff_password=args.staff_password,
        device_password=args.device_password, arrivals_per_hour=args.kiosk_rate, seed=args.seed,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    print(f"SmartHall simulator: {describe(simulation)}\n"
          f"  hall {config.layout.hall_id} on {args.mqtt_url} at {args.speed:g}x\n"
          f"  Ctrl-C stops", flush=True)
    reporter = asyncio.create_task(report(simulation))
    try:
        await simulation.run(stop)
    finally:
        reporter.cancel()
    print(f"SmartHall simulator: stopped after {summary(simulation)}", flush=True)
    return 0


async def simulate_devices(link: DeviceLink, simulation: Simulation, stop: asyncio.Event) -> None:
    """The demo's devices, once the hall listens on the bus (a request sent before
    that would only be answered after its retry)."""
    await link.connected.wait()
    try:
        await simulation.run(stop)
    except Exception:
        log.exception("the simulated devices stopped")


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
        data_key = DataKey.load()
    except DataKeyError as exc:
        print(f"error: the data key cannot be used: {exc}", file=sys.stderr)
        return 2
    try:
        database, pool = await open_storage(config, args.demo)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"error: cannot open the hall's database: {exc}", file=sys.stderr)
        return 2
    server = HallServer.assemble(config, pool, clock, data_key)
    broker: Broker | None = None
    try:
        await server.start()
        collector.install()
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
    background = [asyncio.create_task(runtime.keep_time()), asyncio.create_task(link.run()),
                  asyncio.create_task(collector.sweep_nightly(config.rollover_hour,
                                                              config.timezone))]
    devices_stop = asyncio.Event()
    simulation: Simulation | None = None
    simulated: asyncio.Task[None] | None = None
    if args.demo:
        # The hall's devices on the bus, at the hall clock's speed; DemoActivity clerks
        # only the windows no simulated terminal works at, and leaves citizens to the kiosks.
        simulation = build_simulation(config, link.url, args.speed)
        simulated = asyncio.create_task(simulate_devices(link, simulation, devices_stop))
        clerks = DemoActivity(runtime, arrivals_per_hour=0,
                              skip_windows=simulation.driven_windows)
        background += [simulated, asyncio.create_task(clerks.run()),
                       asyncio.create_task(report(simulation))]
    base = f"http://{host}:{port}"
    layout = config.layout
    print(f"SmartHall: {layout.name} ({len(layout.windows)} windows, "
          f"{len(layout.services)} services) is running", flush=True)
    if simulation is not None:
        print(f"  demo: simulated citizens and clerks, hall clock from "
              f"{runtime.clock.now():%Y-%m-%d %H:%M} at {args.speed:g}x\n"
              f"        {describe(simulation)}; the other windows' clerks in-process",
              flush=True)
    print(f"  pages:     {base}/ui/ (staff and managers log in with the demo password)\n"
          f"             kiosk {base}/ui/kiosk/?token={DEMO_KIOSK_TOKEN}\n"
          f"             caller {base}/ui/caller/  board {base}/ui/board/\n"
          f"             wall {base}/ui/wall/  console {base}/ui/console/\n"
          f"             mobile {base}/ui/mobile/  touch query {base}/ui/touch/\n"
          f"  hall now:  {base}/api/v1/hall\n  API:       {base}/api/v1/openapi.json\n"
          f"  devices:   {link.url} (MQTT, topics hall/{config.layout.hall_id}/<device>/...)\n"
          f"  health:    {base}/healthz\n  Ctrl-C stops", flush=True)
    await stop.wait()
    print("SmartHall: stopping", flush=True)
    devices_stop.set()  # each simulated device says it is offline, then stops
    others = [task for task in background if task is not simulated]
    for task in others:
        task.cancel()
    if simulated is not None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.shield(simulated)
        others.append(simulated)
    await asyncio.gather(*(stop_task(task) for task in others))
    await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    if args.command == "agent":
        return agent_main(args)
    if args.command == "city":
        from hall.city_main import city_main

        return city_main(args)
    try:
        config = load_hall_config(args.config)
    except ConfigError as exc:
        print(f"error: the configuration cannot be used:\n{exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot read {args.config}: {exc.strerror}", file=sys.stderr)
        return 2
    simulating = args.command == "simulate"
    mqtt_url = args.mqtt_url if simulating else os.environ.get("HALL_MQTT_URL")
    if mqtt_url:
        try:
            BrokerAddress.parse(mqtt_url)
        except ValueError as exc:
            source = "--mqtt-url" if simulating else "HALL_MQTT_URL"
            print(f"error: {source} cannot be used: {exc}", file=sys.stderr)
            return 2
    if simulating:
        return asyncio.run(simulate(config, args))
    return asyncio.run(serve(config, args))


if __name__ == "__main__":
    sys.exit(main())
