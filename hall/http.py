"""The HTTP face of the hall: health and the hall snapshot for now; the full
REST and websocket API grows here."""

from __future__ import annotations

import json

from aiohttp import web

from hall.runtime import HallRuntime
from hall.stream import EventStream
from hall.views import hall_view

RUNTIME = web.AppKey("runtime", HallRuntime)

INDEX = """SmartHall — {name}
  GET /api/v1/hall   the hall now: services with waiting counts and estimates, windows
  GET /healthz       liveness
"""


async def index(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    return web.Response(text=INDEX.format(name=runtime.config.layout.name))


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def hall_snapshot(request: web.Request) -> web.Response:
    return web.json_response(
        hall_view(request.app[RUNTIME]), dumps=_dumps, content_type="application/json"
    )


def _dumps(data: object) -> str:
    return json.dumps(data, ensure_ascii=False)


def build_app(runtime: HallRuntime) -> web.Application:
    app = web.Application()
    app[RUNTIME] = runtime
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/hall", hall_snapshot)
    app.router.add_get("/api/v1/events", EventStream(runtime).handle)
    return app
