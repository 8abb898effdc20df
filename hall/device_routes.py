"""Devices as the manager's console and the status wall see them (Q14, W2):
who is online, what is wrong, and letting an unannounced device in."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from devices.registry import AlreadyAllowed, DeviceSpec, DeviceStatus
from devices.topics import DeviceKind
from hall.api.problems import Problem
from hall.auth import Role, require
from hall.device_store import Approval, DeviceStore
from hall.routes import PEOPLE, api, server_of

MANAGERS = ("manager", "admin")


class DeviceOut(BaseModel):
    id: str
    kind: str | None
    name: str | None
    area: str | None
    window: str | None
    online: bool
    last_seen: datetime | None
    paper: str
    cover: str
    errors: list[str]
    firmware: str
    config_version: str
    quarantined: bool
    approved_by: str | None


class AlertOut(BaseModel):
    device_id: str
    problem: str
    kind: str | None
    area: str | None
    window: str | None
    since: datetime | None
    detail: str


class DevicesOut(BaseModel):
    devices: list[DeviceOut]
    alerts: list[AlertOut]


class ApproveIn(BaseModel):
    kind: DeviceKind
    name: str = Field(min_length=1, max_length=100)
    area: str | None = None
    window: str | None = None
    screen: str | None = None


@api.get("/devices", response=DevicesOut, roles=PEOPLE, tags=("devices",),
         summary="Every device with its health, and the problems that need a person")
async def list_devices(request: web.Request) -> DevicesOut:
    registry = server_of(request).devices
    return DevicesOut(
        devices=[device_out(status) for status in registry.all()],
        alerts=[
            AlertOut(device_id=a.device_id, problem=str(a.problem),
                     kind=a.kind.value if a.kind else None, area=a.area, window=a.window,
                     since=a.since, detail=a.detail)
            for a in registry.alerts()
        ],
    )


@api.post("/devices/{device_id}/approve", body=ApproveIn, response=DeviceOut, roles=MANAGERS,
          tags=("devices",), summary="Let a quarantined device in, as what and where")
async def approve_device(request: web.Request, device_id: str, body: ApproveIn) -> DeviceOut:
    principal = require(request, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    layout = server.config.layout
    if body.area is not None and body.area not in layout.areas:
        raise Problem(422, "unknown_area", f"No area {body.area!r}")
    if body.window is not None and body.window not in layout.windows:
        raise Problem(422, "unknown_window", f"No window {body.window!r}")
    spec = DeviceSpec(device_id, body.kind, body.name, body.area, body.window, body.screen)
    try:
        server.devices.approve(device_id, spec, principal.id, server.runtime.clock.now())
    except AlreadyAllowed as exc:
        raise Problem(409, "already_allowed", str(exc)) from exc
    await DeviceStore(server.pool, layout.hall_id).approve(Approval(
        device_id, body.kind.value, body.name, body.area, body.window, body.screen, principal.id))
    await server.audit.record(principal, "device.approve", device_id,
                              {"kind": body.kind.value, "window": body.window})
    status = server.devices.status(device_id)
    assert status is not None
    return device_out(status)


def device_out(status: DeviceStatus) -> DeviceOut:
    spec = status.spec
    return DeviceOut(
        id=status.id, kind=status.kind.value if status.kind else None,
        name=spec.name if spec else None, area=spec.area if spec else None,
        window=spec.window if spec else None, online=status.online,
        last_seen=status.last_seen, paper=status.paper, cover=status.cover,
        errors=list(status.errors), firmware=status.firmware,
        config_version=status.config_version, quarantined=status.quarantined,
        approved_by=status.approved_by,
    )
