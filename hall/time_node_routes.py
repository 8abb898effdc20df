"""REST for barcode time nodes, time-limit alerts and ratings (D12, D10).

- ``POST /windows/{w}/scan-ticket``: the scanned code moves the ticket on
  (accept, handling, finish), by the staff at the window or the window's device.
- ``GET /alerts``: what the status wall alarms on: tickets past their time
  limits and devices with a problem, in one list.
- ``POST /windows/{w}/evaluation-request``: a token for the citizen's
  evaluation page (the virtual caller's way to what ``terminal.evaluate`` does).
- ``POST /tickets/{id}/evaluation``: the rating, by the window's device or with
  that token.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from hall.api.problems import Problem
from hall.audit import AuditEntry
from hall.auth import PRINCIPAL, Principal, Role, require
from hall.evaluations import Evaluations, RatingRefused
from hall.hall_events import EvaluationRecorded, EvaluationRequested
from hall.routes import (
    PEOPLE,
    WINDOW_ACTORS,
    NodeOut,
    TicketOut,
    WindowOut,
    acting_at,
    api,
    last_seq,
    server_of,
    storage_errors,
    ticket_out,
    window_out,
)
from hall.server import HallServer
from hall.time_limits import Alert
from hall.time_nodes import ScanRefused
from queueing import Layout

# ---------------------------------------------------------------- models


class ScanIn(BaseModel):
    code: str = Field(min_length=1, max_length=64,
                      description="What the scanner read: the ticket's QR code or barcode")


class ScanOut(BaseModel):
    action: Literal["accepted", "handling", "finished"]
    ticket: TicketOut
    window: WindowOut
    seq: int | None


class HallAlertOut(BaseModel):
    id: str
    source: Literal["time_limit", "device"]
    kind: str = Field(description="waiting_too_long, serving_too_long, or a device problem")
    since: datetime | None
    areas: list[str]
    window: str | None
    ticket_id: str | None = None
    number: str | None = None
    service: str | None = None
    staff: str | None = None
    minutes: float | None = Field(default=None,
                                  description="How long it has waited or been served")
    limit_minutes: float | None = None
    device_id: str | None = None
    detail: str = ""


class AlertQuery(BaseModel):
    area: str | None = None
    source: Literal["time_limit", "device"] | None = None


class EvaluationIn(BaseModel):
    rating: int = Field(ge=1, le=5)
    reasons: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=10)
    token: str | None = Field(
        default=None, min_length=16, max_length=128,
        description="From evaluation.request; without it, the window's device rates")


class EvaluationOut(BaseModel):
    ticket_id: str
    window: str
    staff: str | None
    case_id: str | None
    service: str
    rating: int
    reasons: list[str]
    via: str
    seq: int


class EvaluationRequestOut(BaseModel):
    ticket_id: str
    number: str
    window: str
    window_name: str
    staff: str | None
    token: str = Field(description="For POST /tickets/{id}/evaluation; shown once")
    expires_at: datetime


# ---------------------------------------------------------------- scans


def scanning_at(request: web.Request, window_id: str) -> Principal:
    """The staff logged in at the window, a device the hall placed at it, or a manager."""
    principal = require(request, *(Role(r) for r in WINDOW_ACTORS))
    server = server_of(request)
    window = server.runtime.engine.window(window_id)
    if principal.role is Role.STAFF and window.staff != principal.id:
        raise Problem(403, "not_at_window", f"{principal.id} is not logged in at {window_id}")
    if principal.role is Role.DEVICE and device_window(server, principal.id) != window_id:
        raise Problem(403, "not_at_window", f"device {principal.id} is not at {window_id}")
    return principal


def device_window(server: HallServer, device_id: str) -> str | None:
    status = server.devices.status(device_id)
    return None if status is None or status.spec is None else status.spec.window


@api.post("/windows/{window_id}/scan-ticket", body=ScanIn, response=ScanOut,
          roles=WINDOW_ACTORS, tags=("windows",),
          summary="A ticket's code scanned at the window: accept, handling, finish (D12)")
async def scan_ticket(request: web.Request, window_id: str, body: ScanIn) -> ScanOut:
    """A called ticket is accepted (service starts), a ticket in service gets its
    handling node, the next scan finishes it; each scan is a ``ticket.node`` event.
    Another window's ticket, one not called, an unknown or ended one: 409/404."""
    principal = scanning_at(request, window_id)
    server = server_of(request)
    audit = None if principal.role is Role.DEVICE else AuditEntry(
        principal, "window.scan_ticket", window_id, {"code": body.code})
    try:
        with storage_errors():
            result = await server.time_nodes.scan(window_id, body.code, principal.id, audit)
    except ScanRefused as refused:
        raise Problem(refused.status, refused.code, refused.message) from refused
    ticket = server.runtime.engine.ticket(result.ticket_id)
    out = ticket_out(server, ticket)
    out.nodes = await node_outs(server, result.ticket_id)
    return ScanOut.model_validate({
        "action": result.action, "ticket": out, "window": window_out(server, window_id),
        "seq": last_seq(result.stored)})


async def node_outs(server: HallServer, ticket_id: str) -> list[NodeOut]:
    ticket = server.runtime.engine.ticket(ticket_id)
    return [NodeOut(**asdict(node)) for node in await server.time_nodes.nodes(ticket)]


# ---------------------------------------------------------------- alerts


@api.get("/alerts", query=AlertQuery, response=list[HallAlertOut], roles=PEOPLE,
         tags=("hall",), summary="Open alerts: tickets past their time limits, device problems")
async def list_alerts(request: web.Request, query: AlertQuery) -> list[HallAlertOut]:
    """Time-limit alerts come and go with ``alert.raised`` and ``alert.cleared`` on
    the event stream, device problems with ``device.changed``."""
    server = server_of(request)
    layout = server.config.layout
    if query.area is not None and query.area not in layout.areas:
        raise Problem(404, "unknown_area", f"no area {query.area!r}")
    now = server.runtime.clock.now()
    found: list[HallAlertOut] = []
    if query.source in (None, "time_limit"):
        alerts = server.time_nodes.watcher.alerts()
        found += [time_limit_out(alert, layout, now) for alert in alerts]
    if query.source in (None, "device"):
        found += [
            HallAlertOut(
                id=f"{a.problem}/{a.device_id}", source="device", kind=str(a.problem),
                since=a.since, areas=[a.area] if a.area else [], window=a.window,
                device_id=a.device_id, detail=a.detail)
            for a in server.devices.alerts()
        ]
    if query.area is not None:
        found = [alert for alert in found if query.area in alert.areas]
    return found


def time_limit_out(alert: Alert, layout: Layout, now: datetime) -> HallAlertOut:
    if alert.window_id is not None:
        areas = [layout.windows[alert.window_id].area]
    else:
        areas = sorted({w.area for w in layout.windows.values() if alert.service_id in w.services})
    return HallAlertOut(
        id=alert.id, source="time_limit", kind=alert.kind, since=alert.since, areas=areas,
        window=alert.window_id, ticket_id=alert.ticket_id, number=alert.number,
        service=alert.service_id, staff=alert.staff_id, minutes=alert.minutes(now),
        limit_minutes=alert.limit_minutes)


# ---------------------------------------------------------------- evaluations


@api.post("/windows/{window_id}/evaluation-request", response=EvaluationRequestOut,
          roles=WINDOW_ACTORS, tags=("evaluations",),
          summary="A token for the citizen's evaluation page, for the ticket at the window")
async def ask_evaluation(request: web.Request, window_id: str) -> EvaluationRequestOut:
    principal = acting_at(request, window_id)
    server = server_of(request)
    engine = server.runtime.engine
    current = engine.current_ticket(window_id)
    if current is None:
        raise Problem(409, "no_current_ticket", "Nobody is being served at this window")
    window = engine.window(window_id)
    evaluations = Evaluations(server.runtime, server.pool)
    with storage_errors():
        token = await evaluations.grant(current.id, window_id, window.staff)
        grant = await evaluations.granted(token, current.id)
        await server.runtime.record([EvaluationRequested(
            server.runtime.clock.now(), current.id, current.number, window_id, window.staff)])
    await server.audit.record(principal, "evaluation.request", current.id,
                              {"window": window_id})
    return EvaluationRequestOut(
        ticket_id=current.id, number=current.number, window=window_id,
        window_name=window.config.name, staff=window.staff, token=token,
        expires_at=grant.expires_at)


@api.post("/tickets/{ticket_id}/evaluation", body=EvaluationIn, response=EvaluationOut,
          status=201, tags=("evaluations",),
          summary="The citizen's rating, by the window's device or with its page's token")
async def rate_ticket(request: web.Request, ticket_id: str, body: EvaluationIn) -> EvaluationOut:
    """One rating per ticket and window (``already_rated``); it goes to the backend as
    ``evaluation.recorded`` on the event stream, with the case when one is linked."""
    server = server_of(request)
    evaluations = Evaluations(server.runtime, server.pool)
    engine = server.runtime.engine
    try:
        with storage_errors():
            if body.token is not None:
                grant = await evaluations.granted(body.token, ticket_id)
                stored = await evaluations.rate(
                    ticket_id, grant.window_id, grant.staff_id, body.rating, body.reasons,
                    via="token", token=body.token)
            else:
                device_id, window_id = rating_device(request)
                stored = await evaluations.rate(
                    ticket_id, window_id, engine.window(window_id).staff, body.rating,
                    body.reasons, via="device", device_id=device_id)
    except RatingRefused as refused:
        raise Problem(refused.status, refused.code, refused.message) from refused
    event = stored.event
    assert isinstance(event, EvaluationRecorded)
    return EvaluationOut(
        ticket_id=event.ticket_id, window=event.window_id, staff=event.staff_id,
        case_id=event.case_id, service=event.service_id, rating=event.rating,
        reasons=list(event.reasons), via=event.via, seq=stored.seq)


def rating_device(request: web.Request) -> tuple[str, str]:
    """Without a token only a device placed at a window rates, for that window."""
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is None:
        raise Problem(401, "unauthorized", "Rate with the evaluation page's token or as the "
                      "window's device")
    if principal.role is not Role.DEVICE:
        raise Problem(403, "forbidden", "Staff do not rate; the citizen does, on the window's "
                      "device or evaluation page")
    window_id = device_window(server_of(request), principal.id)
    if window_id is None:
        raise Problem(403, "not_at_window", f"device {principal.id} is at no window")
    return principal.id, window_id


__all__ = ["api"]
