"""Managers edit what the hall's screens show (D8): layouts, content items, screen
groups, schedules and urgent notices. Every change is checked against the content it
refers to (signage/model.py), stored with its audit record in one transaction, and
reaches the screens over the bus at once (hall/signage_publisher.py).

Edits are ``PUT`` to the thing's own id: a retried request stores the same again.
What a screen shows now, or at any moment (``?at=``), can be asked before it airs.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import uuid
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, model_validator

from hall.api.problems import Problem
from hall.audit import AuditEntry
from hall.auth import Principal, Role, require
from hall.committer import CommitFailed
from hall.hall_events import NoticesChanged
from hall.routes import MANAGERS, PEOPLE, api, server_of
from hall.runtime import Unavailable
from hall.server import HallServer
from hall.signage_store import KINDS, Editor
from signage import codec
from signage.model import (
    NOTICE_LEVELS,
    Content,
    ContentError,
    Group,
    Item,
    ItemKind,
    Layout,
    Notice,
    Region,
    RegionKind,
    Schedule,
    check_group,
    check_item,
    check_layout,
    check_schedule,
    users_of_group,
    users_of_item,
    users_of_layout,
)
from signage.schedule import resolve

log = logging.getLogger(__name__)

ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
TAGS = ("signage",)
MAX_NOTICE_DAYS = 31


def _url(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"https?://[^\s]{1,490}", value):
        raise ValueError("an http:// or https:// address without spaces")
    return value


Id = Annotated[str, Field(pattern=ID.pattern, max_length=64)]
Url = Annotated[str | None, AfterValidator(_url)]


class RegionIn(BaseModel):
    id: Id
    kind: RegionKind
    x: float = Field(ge=0, le=100, description="Left edge, per cent of the screen's width")
    y: float = Field(ge=0, le=100)
    w: float = Field(gt=0, le=100)
    h: float = Field(gt=0, le=100)


class LayoutIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    regions: list[RegionIn] = Field(min_length=1, max_length=12)


class ItemIn(BaseModel):
    kind: ItemKind
    title: str = Field("", max_length=100)
    text: str | None = Field(None, min_length=1, max_length=500)
    url: Url = None
    seconds: int | None = Field(None, ge=1, le=3600)
    services: list[Id] = Field(default_factory=list, max_length=50)


class GroupIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    areas: list[Id] = Field(default_factory=list, max_length=200)
    floors: list[int] = Field(default_factory=list, max_length=50)
    kinds: list[Literal["window_screen", "hall_board"]] = Field(default_factory=list)
    devices: list[Id] = Field(default_factory=list, max_length=1000)


class ScheduleIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    group: Id
    layout: Id
    playlist: dict[Id, list[Id]] = Field(default_factory=dict)
    priority: int = Field(0, ge=-1000, le=1000)
    weekdays: list[int] = Field(default_factory=list, description="ISO: Monday 1 … Sunday 7")
    start: time | None = Field(None, description="Local time; an end at or before it "
                                                 "runs past midnight")
    end: time | None = None
    start_date: date | None = None
    end_date: date | None = None
    enabled: bool = True


class NoticeIn(BaseModel):
    text: str = Field(min_length=1, max_length=200)
    level: Literal["urgent", "warning", "info"] = "urgent"
    expires_at: AwareDatetime | None = None
    minutes: int | None = Field(None, ge=1, le=MAX_NOTICE_DAYS * 24 * 60,
                                description="Instead of expires_at: how long from now")
    starts_at: AwareDatetime | None = Field(None, description="Now when left out")

    @model_validator(mode="after")
    def _one_expiry(self) -> NoticeIn:
        if (self.expires_at is None) == (self.minutes is None):
            raise ValueError("give expires_at or minutes, one of them")
        return self


class NoticeOut(BaseModel):
    id: str
    text: str
    level: str
    starts_at: datetime
    expires_at: datetime


class ScreenOut(BaseModel):
    device: str
    kind: str
    area: str | None
    floor: int | None
    schedule: str | None
    layout: str | None
    notices: int
    until: datetime | None


class AtQuery(BaseModel):
    at: AwareDatetime | None = Field(None, description="The moment to ask about; now when "
                                                       "left out")


# ------------------------------------------------------------------ helpers


def _refuse(status: int, code: str, title: str, detail: str | None = None,
            **extra: Any) -> Problem:
    log.info("signage edit refused (%s): %s", code, detail or title)
    return Problem(status, code, title, detail, **extra)


def _check_id(what: str, value: str) -> None:
    if ID.fullmatch(value) is None:
        raise _refuse(422, "invalid_id", f"Not a {what} id",
                      "An id is 1 to 64 letters, digits, '-' or '_'")


def _invalid(error: ContentError) -> Problem:
    return _refuse(422, "invalid_content", "The content is not valid", str(error),
                   field=error.where)


def _manager(request: web.Request) -> Principal:
    return require(request, Role.MANAGER, Role.ADMIN)


async def _audit(editor: Editor, principal: Principal, action: str, target: str,
                 detail: dict[str, object]) -> None:
    """In the edit's own transaction: no change is stored without its record."""
    entry = AuditEntry(principal, action, target, detail)
    await AuditEntry.table.write(editor.connection, editor.hall_id, [entry.row()])


def _recheck(content: Content, schedule_ids: list[str]) -> None:
    """Schedules that refer to what changed must still hold."""
    for schedule_id in schedule_ids:
        try:
            check_schedule(content.schedules[schedule_id], content)
        except ContentError as error:
            raise _refuse(409, "breaks_schedule", "The change would break a schedule",
                          f"schedule {schedule_id!r}: {error}", schedule=schedule_id) from error


async def _put(request: web.Request, kind: str, entity: Any) -> dict[str, Any]:
    principal = _manager(request)
    server = server_of(request)
    async with server.signage.store.editing(server.runtime.clock.now()) as editor:
        if kind == "schedule":
            _check(check_schedule, entity, editor.content)
        else:
            users = _users(editor.content, kind, entity.id)
            _recheck(_replace(editor.content, kind, entity), users)
        created = await editor.put(kind, entity, principal.id)
        stored = _to_json(kind, entity)
        await _audit(editor, principal, f"signage.{kind}.put", entity.id,
                     {"created": created, kind: stored})
    await server.signage.reload()
    return stored


async def _delete(request: web.Request, kind: str, entity_id: str) -> None:
    principal = _manager(request)
    server = server_of(request)
    async with server.signage.store.editing(server.runtime.clock.now()) as editor:
        users = _users(editor.content, kind, entity_id)
        if users:
            raise _refuse(409, "in_use", f"The {kind} is in use",
                          f"used by schedule(s) {', '.join(users)}", schedules=users)
        if not await editor.delete(kind, entity_id):
            raise _refuse(404, f"unknown_{kind}", f"No {kind} {entity_id!r}")
        await _audit(editor, principal, f"signage.{kind}.delete", entity_id, {})
    await server.signage.reload()


def _check(check: Any, *args: Any) -> None:
    try:
        check(*args)
    except ContentError as error:
        raise _invalid(error) from error


_FIELDS = {"layout": "layouts", "item": "items", "group": "groups", "schedule": "schedules"}


def _replace(content: Content, kind: str, entity: Any) -> Content:
    field = _FIELDS[kind]
    changed: dict[str, Any] = {field: {**getattr(content, field), entity.id: entity}}
    return dataclasses.replace(content, **changed)


def _users(content: Content, kind: str, entity_id: str) -> list[str]:
    if kind == "layout":
        return users_of_layout(content, entity_id)
    if kind == "group":
        return users_of_group(content, entity_id)
    if kind == "item":
        return users_of_item(content, entity_id)
    return []


def _to_json(kind: str, entity: Any) -> dict[str, Any]:
    encode: Callable[[Any], dict[str, Any]] = KINDS[kind][0]
    return encode(entity)


# ------------------------------------------------------------------ reads


@api.get("/signage", roles=MANAGERS, tags=TAGS,
         summary="All signage content: layouts, items, screen groups, schedules, live notices")
async def get_signage(request: web.Request) -> dict[str, Any]:
    _manager(request)
    server = server_of(request)
    content = await server.signage.store.load(server.runtime.clock.now())
    return {
        "layouts": [codec.layout_to_json(x) for x in content.layouts.values()],
        "items": [codec.item_to_json(x) for x in content.items.values()],
        "groups": [codec.group_to_json(x) for x in content.groups.values()],
        "schedules": [codec.schedule_to_json(x) for x in content.schedules.values()],
        "notices": [_notice_out(n).model_dump(mode="json") for n in content.notices],
    }


@api.get("/signage/screens", response=list[ScreenOut], roles=PEOPLE, tags=TAGS,
         summary="Every screen that shows signage, with what it shows now")
async def list_screens(request: web.Request) -> list[ScreenOut]:
    server = server_of(request)
    hub = server.signage
    content = await hub.store.load(server.runtime.clock.now())
    now = server.runtime.clock.now()
    found = []
    for screen in hub.screens(server.devices.all()):
        showing = resolve(content, screen, now, hub.zone)
        found.append(ScreenOut(
            device=screen.id, kind=screen.kind, area=screen.area, floor=screen.floor,
            schedule=showing.schedule.id if showing.schedule else None,
            layout=showing.layout.id if showing.layout else None,
            notices=len(showing.notices), until=showing.until))
    return found


@api.get("/signage/screens/{device_id}", query=AtQuery, roles=PEOPLE, tags=TAGS,
         summary="What one screen shows now, or at a given moment: its display.signage message")
async def get_screen(request: web.Request, device_id: str, query: AtQuery) -> dict[str, Any]:
    server = server_of(request)
    hub = server.signage
    status = server.devices.status(device_id)
    screens = hub.screens([status] if status is not None else [])
    if not screens:
        raise _refuse(404, "unknown_screen", f"No window screen or hall board {device_id!r}")
    moment = query.at or server.runtime.clock.now()
    content = await hub.store.load(moment)
    view = hub.view(resolve(content, screens[0], moment, hub.zone))
    result: dict[str, Any] = msgspec.to_builtins(view)
    return result


# ------------------------------------------------------------------ edits


@api.put("/signage/layouts/{layout_id}", body=LayoutIn, roles=MANAGERS, tags=TAGS,
         summary="Create or replace a layout: the screen's regions")
async def put_layout(request: web.Request, layout_id: str, body: LayoutIn) -> dict[str, Any]:
    _check_id("layout", layout_id)
    layout = Layout(layout_id, body.name, tuple(
        Region(r.id, r.kind, r.x, r.y, r.w, r.h) for r in body.regions))
    _check(check_layout, layout)
    return await _put(request, "layout", layout)


@api.delete("/signage/layouts/{layout_id}", roles=MANAGERS, tags=TAGS,
            summary="Delete a layout no schedule uses")
async def delete_layout(request: web.Request, layout_id: str) -> None:
    await _delete(request, "layout", layout_id)


@api.put("/signage/items/{item_id}", body=ItemIn, roles=MANAGERS, tags=TAGS,
         summary="Create or replace a content item: a notice, an image, a video or a widget")
async def put_item(request: web.Request, item_id: str, body: ItemIn) -> dict[str, Any]:
    _check_id("item", item_id)
    item = Item(item_id, body.kind, body.title, body.text, body.url, body.seconds,
                tuple(body.services))
    _check(check_item, item)
    services = server_of(request).config.layout.services
    unknown = [s for s in item.services if s not in services]
    if unknown:
        raise _refuse(422, "unknown_service", f"No service {unknown[0]!r}")
    return await _put(request, "item", item)


@api.delete("/signage/items/{item_id}", roles=MANAGERS, tags=TAGS,
            summary="Delete a content item no schedule plays")
async def delete_item(request: web.Request, item_id: str) -> None:
    await _delete(request, "item", item_id)


@api.put("/signage/groups/{group_id}", body=GroupIn, roles=MANAGERS, tags=TAGS,
         summary="Create or replace a screen group: by area, floor and kind, or by device")
async def put_group(request: web.Request, group_id: str, body: GroupIn) -> dict[str, Any]:
    _check_id("group", group_id)
    group = Group(group_id, body.name, frozenset(body.areas), frozenset(body.floors),
                  frozenset(body.kinds), frozenset(body.devices))
    layout = server_of(request).config.layout
    _check(check_group, group, layout.areas, {a.floor for a in layout.areas.values()})
    return await _put(request, "group", group)


@api.delete("/signage/groups/{group_id}", roles=MANAGERS, tags=TAGS,
            summary="Delete a screen group no schedule uses")
async def delete_group(request: web.Request, group_id: str) -> None:
    await _delete(request, "group", group_id)


@api.put("/signage/schedules/{schedule_id}", body=ScheduleIn, roles=MANAGERS, tags=TAGS,
         summary="Create or replace a schedule: what a group shows when")
async def put_schedule(request: web.Request, schedule_id: str,
                       body: ScheduleIn) -> dict[str, Any]:
    _check_id("schedule", schedule_id)
    schedule = Schedule(
        id=schedule_id, name=body.name, group=body.group, layout=body.layout,
        playlist={region: tuple(ids) for region, ids in body.playlist.items()},
        priority=body.priority, weekdays=frozenset(body.weekdays),
        start=_minute(body.start), end=_minute(body.end), start_date=body.start_date,
        end_date=body.end_date, enabled=body.enabled)
    return await _put(request, "schedule", schedule)


@api.delete("/signage/schedules/{schedule_id}", roles=MANAGERS, tags=TAGS,
            summary="Delete a schedule")
async def delete_schedule(request: web.Request, schedule_id: str) -> None:
    await _delete(request, "schedule", schedule_id)


def _minute(value: time | None) -> time | None:
    """Schedules are to the minute, as the stored form and the screens have them."""
    return None if value is None else value.replace(second=0, microsecond=0, tzinfo=None)


# ------------------------------------------------------------------ notices


@api.get("/signage/notices", response=list[NoticeOut], tags=TAGS,
         summary="The urgent notices on the screens now (public: touch-query and mobile pages)")
async def list_notices(request: web.Request) -> list[NoticeOut]:
    server = server_of(request)
    now = server.runtime.clock.now()
    content = await server.signage.store.load(now)
    return [_notice_out(n) for n in content.notices if n.active(now)]


@api.post("/signage/notices", body=NoticeIn, response=NoticeOut, status=201, roles=MANAGERS,
          tags=TAGS, summary="Push an urgent notice to every screen until it expires")
async def post_notice(request: web.Request, body: NoticeIn) -> NoticeOut:
    principal = _manager(request)
    server = server_of(request)
    now = server.runtime.clock.now()
    starts = body.starts_at or now
    expires = body.expires_at or starts + timedelta(minutes=body.minutes or 0)
    if expires <= max(starts, now):
        raise _refuse(422, "already_expired", "The notice would expire before it shows",
                      f"expires_at {expires.isoformat()} is not after "
                      f"{max(starts, now).isoformat()}")
    if expires - now > timedelta(days=MAX_NOTICE_DAYS):
        raise _refuse(422, "too_long", f"A notice lasts at most {MAX_NOTICE_DAYS} days")
    level = body.level if body.level in NOTICE_LEVELS else "urgent"
    notice = Notice(f"n-{uuid.uuid4().hex[:12]}", body.text, level, starts, expires)
    async with server.signage.store.editing(now) as editor:
        await editor.add_notice(notice, principal.id)
        await _audit(editor, principal, "signage.notice.post", notice.id, {
            "text": notice.text, "level": level, "starts_at": starts.isoformat(),
            "expires_at": expires.isoformat()})
    await server.signage.reload()
    await _notices_changed(server, notice.id, "posted", starts, expires)
    return _notice_out(notice)


@api.delete("/signage/notices/{notice_id}", roles=MANAGERS, tags=TAGS,
            summary="Withdraw a notice before it expires")
async def withdraw_notice(request: web.Request, notice_id: str) -> None:
    principal = _manager(request)
    server = server_of(request)
    async with server.signage.store.editing(server.runtime.clock.now()) as editor:
        if not await editor.withdraw_notice(notice_id, principal.id):
            raise _refuse(404, "unknown_notice", f"No live notice {notice_id!r}")
        await _audit(editor, principal, "signage.notice.withdraw", notice_id, {})
    await server.signage.reload()
    await _notices_changed(server, notice_id, "withdrawn", None, None)


async def _notices_changed(server: HallServer, notice_id: str, change: str,
                           starts: datetime | None, expires: datetime | None) -> None:
    """Tells pages on the event stream (the hall board) to read the notices again. The
    notice is stored already: a log that cannot take the event now costs a browser
    board the news until its next reload, which is no reason to fail the edit."""
    event = NoticesChanged(server.runtime.clock.now(), notice_id, change, starts, expires)
    try:
        await server.runtime.record([event])
    except (Unavailable, CommitFailed) as exc:
        log.warning("notice %s %s not on the event stream: %s", notice_id, change, exc)


def _notice_out(notice: Notice) -> NoticeOut:
    return NoticeOut(id=notice.id, text=notice.text, level=notice.level,
                     starts_at=notice.starts_at, expires_at=notice.expires_at)

