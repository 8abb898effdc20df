"""A city process: leads some of a city's halls, as the advisory locks decide.

Each hall it leads is a whole hall server (``HallServer``) on the process's
shared database pool, with its device link on the shared broker and its own
HTTP site on the hall's port, so a hall's clients see the same server wherever
it runs. Starting to lead restores the hall from its stored events, exactly as
a restart does; that is what makes a takeover lose nothing acknowledged.

The routing rule (docs/operations.md): a hall's port is answered only by the
process that leads it, so a balancer that health-checks ``/readyz`` on each
hall port of every server finds the leader; without one, any process's city
port redirects ``/halls/<id>/<path>`` to the leader and lists every hall's
leader at ``/city/halls``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from devices.client import stop_task
from hall.city_config import CityConfig
from hall.clock import WallClock
from hall.committer import STORAGE_ERRORS
from hall.device_link import DeviceLink
from hall.http import build_app
from hall.leadership import Leadership, held_halls
from hall.notify.listener import NotifyListener
from hall.pii import DataKey
from hall.server import HallServer

log = logging.getLogger(__name__)


HANDOVER_GRACE = 5.0
"""Seconds a hall being given up waits for its requests in flight: halls stop one
after another, and one stuck request must not keep the others from their next leader."""


@dataclass
class LedHall:
    server: HallServer
    runner: web.AppRunner
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


async def writers_pool(url: str, size: int) -> asyncpg.Pool:
    """Connections for the halls' group commits alone. A commit is one statement that
    leaves nothing behind on its connection, so the pool's reset (a round trip on
    every release) is skipped, and commits never queue behind the API's queries."""
    async def keep(_connection: asyncpg.Connection) -> None:
        return None

    pool: asyncpg.Pool = await asyncpg.create_pool(url, min_size=1, max_size=size, reset=keep)
    return pool


class CityMetrics:
    def __init__(self, process: str) -> None:
        self.registry = CollectorRegistry()
        self.led = Gauge("smarthall_city_halls_led", "Halls this process leads",
                         ["process"], registry=self.registry).labels(process)
        self.takeovers = Counter("smarthall_city_takeovers", "Halls this process began to lead",
                                 ["process"], registry=self.registry).labels(process)
        self.start_seconds = Gauge(
            "smarthall_city_last_start_seconds",
            "Seconds the last hall this process began to lead took to restore and listen",
            ["process"], registry=self.registry).labels(process)


class CityProcess:
    def __init__(self, config: CityConfig, pool: asyncpg.Pool, writers: asyncpg.Pool,
                 database_url: str, mqtt_url: str, name: str, data_key: DataKey) -> None:
        self.config = config
        self.pool = pool
        self.writers = writers
        """The halls' group commits take turns on these (``writers_pool``)."""
        self.mqtt_url = mqtt_url
        self.name = name
        self.data_key = data_key
        self.halls: dict[str, LedHall] = {}
        self.metrics = CityMetrics(name)
        self.notify_listener = NotifyListener(pool)
        """One LISTEN connection for every hall this process leads."""
        self.leadership = Leadership(
            database_url, [hall.layout.hall_id for hall in config.halls],
            lead=self.lead, resign=self.resign, interval=config.interval_seconds)

    async def lead(self, hall_id: str) -> bool:
        """Restore, then listen on the bus and the hall's port; False, with nothing
        left running, if any of it fails (the next round tries again)."""
        config = self.config.hall(hall_id)
        assert config is not None
        began = time.perf_counter()
        server = HallServer.assemble(config, self.pool, WallClock(config.timezone),
                                     self.data_key, writers=self.writers,
                                     notify_listener=self.notify_listener)
        try:
            await server.start()
        except STORAGE_ERRORS as exc:
            log.warning("hall %s not started: its storage failed (%s)", hall_id, exc)
            await server.stop()
            return False
        runner = web.AppRunner(build_app(server), access_log=None,
                               shutdown_timeout=HANDOVER_GRACE)
        await runner.setup()
        try:
            await web.TCPSite(runner, config.http_host, config.http_port,
                              reuse_address=True).start()
        except OSError as exc:
            log.warning("hall %s not started: cannot listen on %s:%d (%s)", hall_id,
                        config.http_host, config.http_port, exc.strerror)
            await runner.cleanup()
            await server.stop()
            return False
        link = DeviceLink(server, self.mqtt_url)
        led = LedHall(server, runner, [
            asyncio.create_task(server.runtime.keep_time(), name=f"clock-{hall_id}"),
            asyncio.create_task(link.run(), name=f"devices-{hall_id}"),
        ])
        self.halls[hall_id] = led
        await self._record_leader(hall_id, config.http_port)
        gc.freeze()  # what the hall keeps for life: see hall/collector.py
        seconds = time.perf_counter() - began
        self.metrics.takeovers.inc()
        self.metrics.led.set(len(self.halls))
        self.metrics.start_seconds.set(seconds)
        log.info("leading hall %s on port %d (started in %.2f s)", hall_id, config.http_port,
                 seconds)
        return True

    async def resign(self, hall_id: str) -> None:
        led = self.halls.pop(hall_id, None)
        if led is None:
            return
        self.metrics.led.set(len(self.halls))
        await asyncio.gather(*(stop_task(task) for task in led.tasks))
        await led.runner.cleanup()
        await led.server.stop()
        log.info("released hall %s", hall_id)

    async def _record_leader(self, hall_id: str, port: int) -> None:
        """Best effort: the lock, not this row, decides who leads."""
        try:
            await self.pool.execute(
                "INSERT INTO city_leaders (hall_id, process, url) VALUES ($1, $2, $3) "
                "ON CONFLICT (hall_id) DO UPDATE "
                "SET process = excluded.process, url = excluded.url, since = now()",
                hall_id, self.name, f"{self.config.advertise}:{port}")
        except STORAGE_ERRORS as exc:
            log.warning("hall %s: leader not recorded for routing: %s", hall_id, exc)

    async def leaders(self) -> dict[str, dict[str, object]]:
        """Each hall's leader as the locks and the routing rows agree; a row whose
        lock nobody holds is a leader that died."""
        async with self.pool.acquire() as connection:
            held = await held_halls(connection)
            rows = await connection.fetch("SELECT hall_id, process, url, since FROM city_leaders")
        known = {row["hall_id"]: row for row in rows}
        answer: dict[str, dict[str, object]] = {}
        for hall_id, key in self.leadership.keys.items():
            row = known.get(hall_id) if key in held else None
            answer[hall_id] = {
                "hall_id": hall_id,
                "leader": None if row is None else row["process"],
                "url": None if row is None else row["url"],
                "since": None if row is None else row["since"].isoformat(),
            }
        return answer

    # ------------------------------------------------------------ the city port

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/city/halls", self._halls)
        app.router.add_get("/city/process", self._process)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_route("*", "/halls/{hall_id}/{tail:.*}", self._route)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "joined": self.leadership.joined.is_set()})

    async def _halls(self, request: web.Request) -> web.Response:
        leaders = await self._leaders_or_503()
        return web.json_response({"city": self.config.name, "halls": list(leaders.values())})

    async def _process(self, request: web.Request) -> web.Response:
        return web.json_response({
            "name": self.name, "leads": sorted(self.halls),
            "members": self.leadership.members, "fair_share": self.leadership.fair_share(),
        })

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            content_type="text/plain", charset="utf-8")

    async def _route(self, request: web.Request) -> web.Response:
        hall_id = request.match_info["hall_id"]
        if self.config.hall(hall_id) is None:
            return _problem(404, "unknown_hall", f"no hall {hall_id!r} in this city")
        leader = (await self._leaders_or_503())[hall_id]
        if leader["url"] is None:
            return _problem(503, "no_leader", f"hall {hall_id} is being taken over; retry",
                            headers={"Retry-After": "2"})
        location = f"{leader['url']}/{request.match_info['tail']}"
        if request.query_string:
            location += f"?{request.query_string}"
        raise web.HTTPTemporaryRedirect(location)

    async def _leaders_or_503(self) -> dict[str, dict[str, object]]:
        try:
            return await self.leaders()
        except STORAGE_ERRORS as exc:
            raise web.HTTPServiceUnavailable(
                text=f"the city's database does not answer: {exc}",
                headers={"Retry-After": "2"}) from exc


def _problem(status: int, code: str, detail: str,
             headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"type": code, "status": status, "detail": detail},
                             status=status, headers=headers,
                             content_type="application/problem+json")
