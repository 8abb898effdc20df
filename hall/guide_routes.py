"""Guides for the touch-query terminals, kiosks and mobile pages (D1, D3, D4) and the
windows' camera links for supervision (D5), over REST.

Reading guides, sample forms and floor maps needs no login: they are what the hall
tells every citizen. Editing them is for managers. Camera links are for staff and
managers only: they show the counters and whoever stands at them.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field

from hall.api.problems import Problem
from hall.api.routing import read_body
from hall.audit import AuditEntry
from hall.auth import Principal, Role, require
from hall.documents import BadDocument
from hall.guides import (
    FORM_TYPES,
    MAX_FORM_BYTES,
    Camera,
    Form,
    GuideStore,
    check_form,
    merge_materials,
)
from hall.routes import MANAGERS, PEOPLE, api, server_of
from hall.server import HallServer

log = logging.getLogger(__name__)

GUIDES = ("guides",)
FLOORS = ("floors",)
CAMERAS = ("cameras",)
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "srt", "http", "https", "ws", "wss")


def _web_url(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"https?://\S{1,490}", value):
        raise ValueError("an http:// or https:// address without spaces")
    return value


def _stream_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in STREAM_SCHEMES or not parts.hostname or re.search(r"\s", value):
        raise ValueError(f"a stream address ({', '.join(STREAM_SCHEMES)}) with a host")
    return value


WebUrl = Annotated[str | None, AfterValidator(_web_url)]
StreamUrl = Annotated[str, Field(max_length=500), AfterValidator(_stream_url)]


# ------------------------------------------------------------------ models


class MaterialIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    note: str = Field("", max_length=300)


class GuideIn(BaseModel):
    summary: str = Field("", max_length=2000)
    steps: list[Annotated[str, Field(min_length=1, max_length=300)]] = Field(
        default_factory=list, max_length=30)
    materials: list[MaterialIn] = Field(
        default_factory=list, max_length=50,
        description="Materials the catalog and the ticket text do not list")
    fee: str = Field("", max_length=200)
    time_limit: str = Field("", max_length=200, description="The promised time, e.g. 3 个工作日")
    basis: str = Field("", max_length=1000, description="The legal basis")


class MaterialOut(BaseModel):
    name: str
    note: str
    source: str = Field(description="catalog, ticket or guide")


class FormOut(BaseModel):
    id: str
    title: str
    kind: str = Field(description="file (stored by the hall) or link")
    url: str = Field(description="Where to fetch it")
    content_type: str | None
    size: int | None


class WindowPlace(BaseModel):
    id: str
    name: str
    area: str
    area_name: str
    floor: int


class GuideOut(BaseModel):
    service: str
    name: str
    category: str
    department: str
    direction: str
    summary: str
    steps: list[str]
    materials: list[MaterialOut]
    fee: str
    time_limit: str
    basis: str
    guide_url: str | None
    windows: list[WindowPlace]
    forms: list[FormOut]
    updated_at: datetime | None


class GuideBrief(BaseModel):
    service: str
    name: str
    forms: int


class CategoryOut(BaseModel):
    name: str
    guides: list[GuideBrief]


class FormLinkIn(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    url: Annotated[str, AfterValidator(_web_url)]


class UploadQuery(BaseModel):
    title: str = Field(min_length=1, max_length=200)


class Rect(BaseModel):
    x: float = Field(ge=0)
    y: float = Field(ge=0)
    w: float = Field(gt=0)
    h: float = Field(gt=0)


class Point(BaseModel):
    x: float = Field(ge=0)
    y: float = Field(ge=0)


class Feature(Point):
    label: str = Field(min_length=1, max_length=50)
    kind: str = Field("other", pattern=r"^[a-z_]{1,32}$",
                      description="e.g. kiosk, entrance, lift, stairs, toilet, rest, forms")


class FloorMapIn(BaseModel):
    name: str = Field("", max_length=100)
    width: float = Field(gt=0, le=100_000, description="The map's width in its own units")
    height: float = Field(gt=0, le=100_000)
    background_url: WebUrl = None
    areas: dict[str, Rect] = Field(default_factory=dict)
    windows: dict[str, Point] = Field(default_factory=dict)
    features: list[Feature] = Field(default_factory=list, max_length=200)


class AreaOnMap(BaseModel):
    id: str
    name: str
    region: str
    shape: Rect | None


class ServiceBrief(BaseModel):
    id: str
    name: str


class WindowOnMap(BaseModel):
    id: str
    name: str
    area: str
    services: list[ServiceBrief]
    position: Point | None


class FloorMapOut(BaseModel):
    floor: int
    name: str
    width: float | None
    height: float | None
    background_url: str | None
    areas: list[AreaOnMap]
    windows: list[WindowOnMap]
    features: list[Feature]


class FloorBrief(BaseModel):
    floor: int
    name: str
    areas: list[str]
    mapped: bool


class CameraIn(BaseModel):
    url: StreamUrl
    label: str = Field("", max_length=100)


class CameraOut(BaseModel):
    window: str
    window_name: str
    area: str
    url: str
    label: str
    updated_by: str
    updated_at: datetime


# ------------------------------------------------------------------ helpers


def _store(server: HallServer) -> GuideStore:
    return GuideStore(server.pool, server.config.layout.hall_id)


def _refuse(status: int, code: str, title: str, detail: str | None = None,
            **extra: Any) -> Problem:
    log.info("guide request refused (%s): %s", code, detail or title)
    return Problem(status, code, title, detail, **extra)


def _service(server: HallServer, service_id: str) -> None:
    if service_id not in server.config.layout.services:
        raise _refuse(404, "unknown_service", f"No service {service_id!r}")


def _window(server: HallServer, window_id: str) -> None:
    if window_id not in server.config.layout.windows:
        raise _refuse(404, "unknown_window", f"No window {window_id!r}")


@contextlib.asynccontextmanager
async def _editing(server: HallServer, principal: Principal, action: str, target: str,
                   detail: dict[str, object]) -> AsyncIterator[asyncpg.Connection]:
    """A change and its audit record in one transaction."""
    async with server.pool.acquire() as connection, connection.transaction():
        yield connection
        entry = AuditEntry(principal, action, target, detail)
        await AuditEntry.table.write(connection, server.config.layout.hall_id, [entry.row()])


def _form_out(form: Form) -> FormOut:
    if form.url is not None:
        return FormOut(id=form.id, title=form.title, kind="link", url=form.url,
                       content_type=None, size=None)
    return FormOut(id=form.id, title=form.title, kind="file",
                   url=f"/api/v1/guides/{form.service_id}/forms/{form.id}",
                   content_type=form.content_type, size=form.size)


def _masked(url: str) -> str:
    """A stream address for the audit log: without the password it may carry."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# ------------------------------------------------------------------ guides


@api.get("/guides", response=list[CategoryOut], tags=GUIDES,
         summary="Service guides by category (touch-query, kiosk and mobile pages)")
async def list_guides(request: web.Request) -> list[CategoryOut]:
    server = server_of(request)
    catalog = {item.code: item for item in await server.backend.catalog()}
    counts: dict[str, int] = {}
    for form in await _store(server).forms():
        counts[form.service_id] = counts.get(form.service_id, 0) + 1
    categories: dict[str, list[GuideBrief]] = {}
    for service in server.config.layout.services.values():
        item = catalog.get(service.id)
        category = item.category if item is not None and item.category else service.category
        categories.setdefault(category, []).append(GuideBrief(
            service=service.id, name=item.name if item else service.name,
            forms=counts.get(service.id, 0)))
    return [CategoryOut(name=name, guides=guides) for name, guides in categories.items()]


@api.get("/guides/{service_id}", response=GuideOut, tags=GUIDES,
         summary="A service's guide: materials, steps, where it is served, sample forms")
async def get_guide(request: web.Request, service_id: str) -> GuideOut:
    server = server_of(request)
    _service(server, service_id)
    return await _guide(server, service_id)


async def _guide(server: HallServer, service_id: str) -> GuideOut:
    layout = server.config.layout
    service = layout.services[service_id]
    store = _store(server)
    item = next((i for i in await server.backend.catalog() if i.code == service_id), None)
    found = await store.guide(service_id)
    spec, updated_at = found if found is not None else ({}, None)
    ticket = server.config.tickets.get(service_id)
    materials = merge_materials(
        ("catalog", [(m, "") for m in (item.materials if item else ())]),
        ("ticket", [(m, "") for m in (ticket.materials if ticket else ())]),
        ("guide", [(m["name"], m.get("note", "")) for m in spec.get("materials", ())]),
    )
    windows = [
        WindowPlace(id=w.id, name=w.name, area=w.area, area_name=layout.areas[w.area].name,
                    floor=layout.areas[w.area].floor)
        for w in layout.windows.values() if service_id in w.services
    ]
    return GuideOut(
        service=service_id, name=item.name if item else service.name,
        category=item.category if item and item.category else service.category,
        department=item.department if item else "",
        direction=ticket.direction if ticket else "",
        summary=spec.get("summary", ""), steps=list(spec.get("steps", ())),
        materials=[MaterialOut(**m) for m in materials], fee=spec.get("fee", ""),
        time_limit=spec.get("time_limit", ""), basis=spec.get("basis", ""),
        guide_url=item.guide_url if item else None, windows=windows,
        forms=[_form_out(f) for f in await store.forms(service_id)], updated_at=updated_at,
    )


@api.put("/guides/{service_id}", body=GuideIn, response=GuideOut, roles=MANAGERS,
         tags=GUIDES, summary="Write a guide's own part: summary, steps, extra materials, fee")
async def put_guide(request: web.Request, service_id: str, body: GuideIn) -> GuideOut:
    principal = require(request, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    _service(server, service_id)
    spec = body.model_dump()
    async with _editing(server, principal, "guide.put", service_id, spec) as connection:
        await _store(server).put_guide(connection, service_id, spec, principal.id)
    return await _guide(server, service_id)


@api.post("/guides/{service_id}/forms", query=UploadQuery, response=FormOut, status=201,
          roles=MANAGERS, tags=GUIDES,
          summary="Upload a sample form (PDF, JPEG or PNG; the body is the file)")
async def upload_form(request: web.Request, service_id: str, query: UploadQuery) -> FormOut:
    principal = require(request, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    _service(server, service_id)
    content_type = request.content_type
    if content_type not in FORM_TYPES:
        raise _refuse(415, "unsupported_media_type", "Unsupported form type",
                      f"Content-Type must be one of {', '.join(FORM_TYPES)}",
                      headers={"Accept-Post": ", ".join(FORM_TYPES)},
                      accepted=list(FORM_TYPES))
    content = await read_body(request, MAX_FORM_BYTES)
    if not content:
        raise _refuse(422, "empty_form", "The form is empty")
    try:
        check_form(content_type, content)
    except BadDocument as error:
        raise _refuse(422, "content_mismatch", f"The body is not {content_type}",
                      str(error)) from error
    detail: dict[str, object] = {"title": query.title, "content_type": content_type,
                                 "size": len(content)}
    async with _editing(server, principal, "guide.form.upload", service_id,
                        detail) as connection:
        form = await _store(server).add_form(connection, service_id, query.title,
                                             principal.id, content_type=content_type,
                                             content=content)
    return _form_out(form)


@api.post("/guides/{service_id}/form-links", body=FormLinkIn, response=FormOut, status=201,
          roles=MANAGERS, tags=GUIDES, summary="Link a sample form kept elsewhere")
async def link_form(request: web.Request, service_id: str, body: FormLinkIn) -> FormOut:
    principal = require(request, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    _service(server, service_id)
    async with _editing(server, principal, "guide.form.link", service_id,
                        body.model_dump()) as connection:
        form = await _store(server).add_form(connection, service_id, body.title,
                                             principal.id, url=body.url)
    return _form_out(form)


@api.get("/guides/{service_id}/forms/{form_id}", tags=GUIDES,
         summary="A sample form's file (a linked one redirects to its address)")
async def get_form(request: web.Request, service_id: str, form_id: str) -> web.StreamResponse:
    server = server_of(request)
    found = await _store(server).form_content(service_id, form_id)
    if found is None:
        raise _refuse(404, "unknown_form", f"No form {form_id!r} for {service_id!r}")
    form, content = found
    if content is None:
        assert form.url is not None
        raise web.HTTPFound(form.url)
    extension = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}
    name = f"{form.title}.{extension.get(form.content_type or '', 'bin')}"
    return web.Response(body=content, content_type=form.content_type, headers={
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(name, safe='')}",
        "ETag": f'"{form.sha256}"',
        "Cache-Control": "public, max-age=300",
    })


@api.delete("/guides/{service_id}/forms/{form_id}", roles=MANAGERS, tags=GUIDES,
            summary="Remove a sample form")
async def delete_form(request: web.Request, service_id: str, form_id: str) -> None:
    principal = require(request, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    async with _editing(server, principal, "guide.form.delete", service_id,
                        {"form": form_id}) as connection:
        if not await _store(server).delete_form(connection, service_id, form_id):
            raise _refuse(404, "unknown_form", f"No form {form_id!r} for {service_id!r}")


# ------------------------------------------------------------------ floor maps


@api.get("/floors", response=list[FloorBrief], tags=FLOORS,
         summary="The hall's floors with their areas, and whether each has a map")
async def list_floors(request: web.Request) -> list[FloorBrief]:
    server = server_of(request)
    maps = await _store(server).floor_maps()
    floors: dict[int, list[str]] = {}
    for area in server.config.layout.areas.values():
        floors.setdefault(area.floor, []).append(area.id)
    return [FloorBrief(floor=floor, name=maps.get(floor, {}).get("name") or f"{floor}楼",
                       areas=areas, mapped=floor in maps)
            for floor, areas in sorted(floors.items())]


@api.get("/floors/{floor}", response=FloorMapOut, tags=FLOORS,
         summary="A floor's map: its areas and windows, with where to draw them (D3)")
async def get_floor(request: web.Request, floor: str) -> FloorMapOut:
    server = server_of(request)
    number = _floor(server, floor)
    spec = (await _store(server).floor_maps()).get(number, {})
    return _floor_out(server, number, spec)


@api.put("/floors/{floor}", body=FloorMapIn, response=FloorMapOut, roles=MANAGERS,
         tags=FLOORS, summary="Draw a floor: its size, background, areas, windows and features")
async def put_floor(request: web.Request, floor: str, body: FloorMapIn) -> FloorMapOut:
    principal = require(request, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    number = _floor(server, floor)
    _check_map(server, number, body)
    spec = body.model_dump()
    async with _editing(server, principal, "floor_map.put", str(number), spec) as connection:
        await _store(server).put_floor_map(connection, number, spec, principal.id)
    return _floor_out(server, number, spec)


def _floor(server: HallServer, text: str) -> int:
    floors = {area.floor for area in server.config.layout.areas.values()}
    try:
        number = int(text)
    except ValueError:
        number = None
    if number not in floors:
        raise _refuse(404, "unknown_floor", f"The hall has no floor {text!r}",
                      floors=sorted(floors))
    assert number is not None
    return number


def _check_map(server: HallServer, floor: int, body: FloorMapIn) -> None:
    layout = server.config.layout
    for area_id, rect in body.areas.items():
        area = layout.areas.get(area_id)
        if area is None or area.floor != floor:
            raise _refuse(422, "unknown_area", f"No area {area_id!r} on floor {floor}")
        if rect.x + rect.w > body.width or rect.y + rect.h > body.height:
            raise _refuse(422, "off_the_map", f"Area {area_id!r} lies outside the map")
    points = [(f"window {w!r}", p) for w, p in body.windows.items()]
    points += [(f"feature {f.label!r}", f) for f in body.features]
    for window_id in body.windows:
        window = layout.windows.get(window_id)
        if window is None or layout.areas[window.area].floor != floor:
            raise _refuse(422, "unknown_window", f"No window {window_id!r} on floor {floor}")
    for what, point in points:
        if point.x > body.width or point.y > body.height:
            raise _refuse(422, "off_the_map", f"The {what} lies outside the map")


def _floor_out(server: HallServer, floor: int, spec: dict[str, Any]) -> FloorMapOut:
    layout = server.config.layout
    shapes = spec.get("areas", {})
    positions = spec.get("windows", {})
    areas = [a for a in layout.areas.values() if a.floor == floor]
    in_floor = {a.id for a in areas}
    return FloorMapOut(
        floor=floor, name=spec.get("name") or f"{floor}楼", width=spec.get("width"),
        height=spec.get("height"), background_url=spec.get("background_url"),
        areas=[AreaOnMap(id=a.id, name=a.name, region=a.region,
                         shape=Rect(**shapes[a.id]) if a.id in shapes else None)
               for a in areas],
        windows=[WindowOnMap(
            id=w.id, name=w.name, area=w.area,
            services=[ServiceBrief(id=s, name=layout.services[s].name) for s in w.services],
            position=Point(**positions[w.id]) if w.id in positions else None)
            for w in layout.windows.values() if w.area in in_floor],
        features=[Feature(**f) for f in spec.get("features", ())],
    )


# ------------------------------------------------------------------ cameras


@api.get("/cameras", response=list[CameraOut], roles=PEOPLE, tags=CAMERAS,
         summary="Every window's camera stream address, for supervision (staff only)")
async def list_cameras(request: web.Request) -> list[CameraOut]:
    require(request, Role.STAFF, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    return [_camera_out(server, c) for c in await _store(server).cameras()
            if c.window_id in server.config.layout.windows]


@api.get("/windows/{window_id}/camera", response=CameraOut, roles=PEOPLE, tags=CAMERAS,
         summary="A window's camera stream address (staff only; the hall records nothing)")
async def get_camera(request: web.Request, window_id: str) -> CameraOut:
    require(request, Role.STAFF, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    _window(server, window_id)
    camera = next((c for c in await _store(server).cameras() if c.window_id == window_id),
                  None)
    if camera is None:
        raise _refuse(404, "no_camera", f"No camera is linked to window {window_id!r}")
    return _camera_out(server, camera)


@api.put("/windows/{window_id}/camera", body=CameraIn, response=CameraOut, roles=MANAGERS,
         tags=CAMERAS, summary="Link a window to its camera's stream address")
async def put_camera(request: web.Request, window_id: str, body: CameraIn) -> CameraOut:
    principal = require(request, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    _window(server, window_id)
    detail: dict[str, object] = {"url": _masked(body.url), "label": body.label}
    async with _editing(server, principal, "camera.put", window_id, detail) as connection:
        camera = await _store(server).put_camera(connection, window_id, body.url, body.label,
                                                 principal.id)
    return _camera_out(server, camera)


@api.delete("/windows/{window_id}/camera", roles=MANAGERS, tags=CAMERAS,
            summary="Unlink a window's camera")
async def delete_camera(request: web.Request, window_id: str) -> None:
    principal = require(request, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    _window(server, window_id)
    async with _editing(server, principal, "camera.delete", window_id, {}) as connection:
        if not await _store(server).delete_camera(connection, window_id):
            raise _refuse(404, "no_camera", f"No camera is linked to window {window_id!r}")


def _camera_out(server: HallServer, camera: Camera) -> CameraOut:
    window = server.config.layout.windows[camera.window_id]
    return CameraOut(window=camera.window_id, window_name=window.name, area=window.area,
                     url=camera.url, label=camera.label, updated_by=camera.updated_by,
                     updated_at=camera.updated_at)
