"""The hall's pages (G5): static HTML, CSS and ES modules under hall/static/, talking to
the server only through the REST API and the event stream, like any other client.

Each page is a folder: ``/ui/<page>/`` serves its ``index.html`` and ``/ui/<page>/<file>``
the rest; ``/ui/common/`` holds what the pages share (API client, event stream, language
switch, styles). Charts use Plotly.js, served from the pinned ``plotly`` package rather
than copied into the repository or fetched from a CDN a hall network may not reach.
"""

from __future__ import annotations

import re
from pathlib import Path

import plotly
from aiohttp import web

STATIC = Path(__file__).with_name("static")
PLOTLY_JS = Path(plotly.__file__).with_name("package_data") / "plotly.min.js"

_PAGE = re.compile(r"[a-z][a-z0-9-]{0,31}")


def pages() -> list[str]:
    """Every page folder that has an index.html, in name order."""
    return sorted(p.name for p in STATIC.iterdir()
                  if p.is_dir() and p.name != "common" and (p / "index.html").is_file())


async def page(request: web.Request) -> web.FileResponse:
    name = request.match_info["page"]
    index = STATIC / name / "index.html"
    if _PAGE.fullmatch(name) is None or not index.is_file():
        raise web.HTTPNotFound(text=f"no page {name!r}")
    return web.FileResponse(index, headers={"Cache-Control": "no-cache"})


async def page_without_slash(request: web.Request) -> web.Response:
    """Relative links in a page resolve against its folder only with the trailing slash."""
    raise web.HTTPPermanentRedirect(f"/ui/{request.match_info['page']}/")


async def plotly_js(request: web.Request) -> web.FileResponse:
    return web.FileResponse(PLOTLY_JS, headers={"Cache-Control": "public, max-age=86400"})


async def ui_index(request: web.Request) -> web.Response:
    links = "".join(f'<li><a href="/ui/{name}/">{name}</a></li>' for name in pages())
    return web.Response(text=f"<!doctype html><meta charset=utf-8><title>SmartHall</title>"
                             f"<h1>SmartHall</h1><ul>{links}</ul>", content_type="text/html")


async def favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "common" / "favicon.svg",
                            headers={"Content-Type": "image/svg+xml"})


def add_page_routes(app: web.Application) -> None:
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/ui/", ui_index)
    app.router.add_get("/ui/vendor/plotly.min.js", plotly_js)
    app.router.add_get("/ui/{page}", page_without_slash)
    app.router.add_get("/ui/{page}/", page)
    app.router.add_static("/ui/", STATIC, append_version=False, follow_symlinks=False)
