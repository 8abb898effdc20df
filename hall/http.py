"""The HTTP face of a hall server: the REST API (``hall.routes``), the event
stream, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from hall import (
    appointment_routes,
    audit_routes,
    backend_routes,
    board_page_routes,
    caller_page_routes,
    console_page_routes,
    device_routes,
    document_routes,
    guide_routes,
    kiosk_page_routes,
    mobile_page_routes,
    mobile_routes,
    notification_routes,
    routes,
    signage_routes,
    stats_routes,
    time_node_routes,
)
from hall.api.problems import Problem
from hall.auth import auth_middleware, authorize
from hall.oidc import OidcLogin, add_oidc_routes
from hall.pages import add_page_routes
from hall.server import SERVER, HallServer

log = logging.getLogger(__name__)

STORAGE_DOWN = (
    ConnectionError, TimeoutError, asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError, asyncpg.InternalClientError,
)
"""What asyncpg raises while the database is unreachable, restarting or shutting
down (``InternalClientError``: see ``hall.committer.STORAGE_ERRORS``): the hall's
fault of the moment, not a bug, so a 503 and not a 500."""
READY_PROBE_SECONDS = 1.0

INDEX = """SmartHall — {name}
  GET /ui/                    the hall's pages: kiosk, caller, screens, wall, console, mobile
  GET /api/v1/hall            the hall now: services with waiting counts and estimates, windows
  GET /api/v1/openapi.json    the REST API
  GET /api/v1/events          websocket: every event, resumable with ?since=<seq>
  GET /healthz /readyz        liveness, readiness
  GET /metrics                Prometheus metrics
"""


async def index(request: web.Request) -> web.Response:
    return web.Response(text=INDEX.format(name=request.app[SERVER].config.layout.name))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready only while the hall takes changes: a load balancer should send
    nobody to a server whose storage is failing."""
    server = request.app[SERVER]
    if not server.runtime.ready:
        raise Problem(503, "not_ready", "The hall is not taking changes now")
    try:
        async with asyncio.timeout(READY_PROBE_SECONDS):
            await server.pool.fetchval("SELECT 1")
    except STORAGE_DOWN as exc:
        raise Problem(503, "not_ready", "The hall cannot reach its database", str(exc)) from exc
    return web.json_response({"status": "ready"})


@web.middleware
async def storage_down(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A request that needed the database while it is away (a staff session to
    look up, a citizen to store) is answered 503 ``unavailable``, like a change
    the hall cannot commit, and the client tries again later. Once a response
    has started (a websocket) the error is the connection's own and goes on."""
    try:
        return await handler(request)
    except STORAGE_DOWN as exc:
        if request.writer.output_size > 0:
            raise
        log.warning("%s %s: the database is unreachable: %r", request.method, request.path, exc)
        raise Problem(503, "unavailable", "The hall cannot reach its database now",
                      str(exc)) from exc


async def metrics(request: web.Request) -> web.Response:
    body = request.app[SERVER].metrics.render()
    return web.Response(body=body, content_type="text/plain", charset="utf-8")


ROUTE_MODULES = (routes, backend_routes, device_routes, document_routes, appointment_routes,
                 mobile_routes, time_node_routes, notification_routes, stats_routes,
                 signage_routes, guide_routes, mobile_page_routes, audit_routes,
                 console_page_routes, caller_page_routes, board_page_routes,
                 kiosk_page_routes)
"""Each declares its routes on ``routes.api`` when imported."""


def build_app(server: HallServer) -> web.Application:
    app = web.Application(middlewares=[storage_down, auth_middleware(server.authenticator)])
    app[SERVER] = server
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/events", server.stream.handle)
    app.on_shutdown.append(lambda _app: server.stream.close_all())
    routes.api.setup(app, authorize=authorize)
    add_page_routes(app)
    oidc = server.config.auth.oidc
    if oidc is not None:
        add_oidc_routes(app, OidcLogin(oidc, server.pool, server.sessions, server.audit))
    return app
