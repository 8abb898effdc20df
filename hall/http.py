"""The HTTP face of a hall server: the REST API (``hall.routes``), the event
stream, health, readiness and metrics."""

from __future__ import annotations

from aiohttp import web

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
    if not request.app[SERVER].runtime.ready:
        raise Problem(503, "not_ready", "The hall is not taking changes now")
    return web.json_response({"status": "ready"})


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
    app = web.Application(middlewares=[auth_middleware(server.authenticator)])
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
