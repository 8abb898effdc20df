"""The hall's REST API under /api/v1.

Handlers are thin: check who is asking, run one engine operation through the
runtime (which answers only once the change is durable), write the audit
record for staff actions and configuration changes, and shape the answer.
Engine refusals become 409/404 problems with the engine's stable codes
(``hall.api.problems``); a hall that is recovering its storage answers 503.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, field_validator, model_validator

from hall import checkin, kiosk_print, priority
from hall.api.problems import Problem
from hall.api.routing import Api
from hall.audit import AuditEntry
from hall.auth import PRINCIPAL, Principal, Role, require
from hall.committer import CommitFailed
from hall.eventstore import StoredEvent
from hall.pii import Identity
from hall.runtime import Unavailable
from hall.server import SERVER, HallServer
from hall.views import TextView, hall_view, service_views, ticket_view, window_view
from queueing import Source, StrategyError, StrategySpec, Ticket

api = Api(
    "/api/v1",
    title="SmartHall",
    version="1",
    description="Queueing and window status of one service hall (政务服务大厅).",
)

PEOPLE = ("staff", "manager", "admin")
WINDOW_ACTORS = ("staff", "manager", "admin", "device")
TICKET_TAKERS = ("device", "staff", "manager", "admin")
MANAGERS = ("manager", "admin")
READERS = (*PEOPLE, "device", "backend")

GB11643_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number_is_valid(value: str) -> bool:
    """Resident ID numbers end in a check character (GB 11643)."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], GB11643_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == value[17].upper()


# ---------------------------------------------------------------- models


class IdentityIn(BaseModel):
    name: str | None = Field(None, max_length=64)
    id_number: str | None = Field(None, max_length=32)
    phone: str | None = Field(None, max_length=20)

    @field_validator("id_number")
    @classmethod
    def _check_id(cls, value: str | None) -> str | None:
        if value is not None and not id_number_is_valid(value.strip()):
            raise ValueError("not a valid 18-character resident ID number (GB 11643)")
        return value.strip().upper() if value else value

    @field_validator("phone")
    @classmethod
    def _check_phone(cls, value: str | None) -> str | None:
        if value is not None and not (value.isdigit() and 7 <= len(value) <= 15):
            raise ValueError("a phone number is 7 to 15 digits")
        return value


class TakeTicket(BaseModel):
    service: str | None = Field(None, description="A service id or a package id")
    source: Source = Source.WALK_IN
    identity: IdentityIn | None = None
    priority_group: str | None = Field(
        None, max_length=64, description="A priority ticket's group (source priority)"
    )
    priority_password: str | None = Field(
        None, min_length=1, max_length=128, description="The priority group's password"
    )
    appointment_code: str | None = Field(
        None, max_length=32, description="Check in a booked appointment (the service is its own)"
    )

    @model_validator(mode="after")
    def _one_way_in(self) -> TakeTicket:
        by_card = (self.source is Source.APPOINTMENT and self.service is None
                   and self.appointment_code is None and self.identity is not None
                   and self.identity.id_number is not None)
        if not by_card and (self.service is None) == (self.appointment_code is None):
            raise ValueError("give a service or an appointment_code, not both")
        priority = (self.priority_group, self.priority_password)
        if self.source is Source.PRIORITY and None in priority:
            raise ValueError("a priority ticket needs its priority_group and priority_password")
        if self.source is not Source.PRIORITY and priority != (None, None):
            raise ValueError("priority_group and priority_password are for source priority")
        if self.appointment_code is not None:
            self.source = Source.APPOINTMENT
        elif self.source is Source.APPOINTMENT and not by_card:
            raise ValueError("an appointment ticket is taken with its appointment_code,"
                             " or by ID card with the identity's id_number")
        return self


class TicketText(BaseModel):
    direction: str
    materials: list[str]
    notice: str


class NodeOut(BaseModel):
    """A time node: every engine transition, and each barcode scan at a window (D12)."""

    kind: str
    label: str
    at: datetime
    window: str | None
    service: str | None
    staff: str | None = Field(description="The staff at the window, on scan nodes")
    source: Literal["engine", "scan"]


class TicketOut(BaseModel):
    id: str
    number: str
    requested: str
    service: str
    services: list[str]
    source: str
    status: str
    issued_at: datetime
    window: str | None
    people_ahead: int | None
    estimated_minutes: float | None
    text: TicketText | None
    seq: int | None = Field(None, description="Sequence number of the last event this made")
    nodes: list[NodeOut] | None = Field(
        default=None, description="Its time nodes, oldest first (GET /tickets/{id} and scans only)")


class WindowOut(BaseModel):
    id: str
    name: str
    area: str
    screen: str
    state: str
    staff: str | None
    ticket: str | None
    ticket_id: str | None
    pause_message: str | None
    anomalies: list[str]
    seq: int | None = None


class LoginAtWindow(BaseModel):
    staff_id: str | None = Field(None, description="Only devices and managers name the staff")


class NamedTicket(BaseModel):
    ticket_id: str


class Transfer(BaseModel):
    service: str | None = None
    window: str | None = None


class Pause(BaseModel):
    reason: str
    message: str | None = Field(None, max_length=200)


class Cancel(BaseModel):
    reason: str = Field("citizen", max_length=64)


class StrategyIn(BaseModel):
    scope: Literal["window", "group", "area", "all"] = "all"
    target: str = ""
    rules: list[Any] = Field(description='e.g. ["transfers_first", {"rule": "weighted"}]')


class StaffLogin(BaseModel):
    staff_id: str
    password: str


class SessionOut(BaseModel):
    token: str
    staff_id: str
    role: str
    name: str


# ---------------------------------------------------------------- helpers


def server_of(request: web.Request) -> HallServer:
    return request.app[SERVER]


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """A hall that cannot store changes answers 503, and nothing happened."""
    try:
        yield
    except (Unavailable, CommitFailed) as exc:
        raise Problem(503, "unavailable", "The hall cannot store changes now", str(exc)) from exc


async def execute(request: web.Request, operation: str, *args: Any, **kwargs: Any) -> list[Any]:
    with storage_errors():
        return await server_of(request).runtime.execute(operation, *args, **kwargs)


def last_seq(stored: list[StoredEvent]) -> int | None:
    return stored[-1].seq if stored else None


def ticket_out(server: HallServer, ticket: Ticket, seq: int | None = None) -> TicketOut:
    view = ticket_view(server.runtime, ticket.id)
    return TicketOut(
        id=view.id,
        number=view.number,
        requested=view.requested,
        service=view.service,
        services=list(view.services),
        source=view.source,
        status=view.status,
        issued_at=view.issued_at,
        window=view.window,
        people_ahead=view.people_ahead,
        estimated_minutes=view.estimated_minutes,
        text=text_out(view.text),
        seq=seq,
    )


def text_out(text: TextView | None) -> TicketText | None:
    if text is None:
        return None
    return TicketText(direction=text.direction, materials=list(text.materials),
                      notice=text.notice)


def window_out(server: HallServer, window_id: str, seq: int | None = None) -> WindowOut:
    view = window_view(server.runtime, window_id)
    return WindowOut(
        id=view.id,
        name=view.name,
        area=view.area,
        screen=view.screen,
        state=view.state,
        staff=view.staff,
        ticket=view.ticket,
        ticket_id=view.ticket_id,
        pause_message=view.pause_message,
        anomalies=list(view.anomalies),
        seq=seq,
    )


def acting_at(request: web.Request, window_id: str) -> Principal:
    """Staff act only at the window they are logged in at; managers, admins
    and the window's devices act at any."""
    principal = require(request, *(Role(r) for r in WINDOW_ACTORS))
    window = server_of(request).runtime.engine.window(window_id)
    if principal.role is Role.STAFF and window.staff != principal.id:
        raise web.HTTPForbidden(text=f"{principal.id} is not logged in at window {window_id}")
    return principal


async def window_action(
    request: web.Request, window_id: str, operation: str, *args: Any, **kwargs: Any
) -> WindowOut:
    principal = acting_at(request, window_id)
    detail: dict[str, object] = {k: v for k, v in kwargs.items() if v is not None}
    detail.update({"args": [str(a) for a in args]} if args else {})
    audit = AuditEntry(principal, f"window.{operation}", window_id, detail)
    stored = await execute(request, operation, window_id, *args, audit=audit, **kwargs)
    return window_out(server_of(request), window_id, last_seq(stored))


# ---------------------------------------------------------------- reads


@api.get("/hall", summary="The hall now: services with waiting counts, windows", tags=("hall",))
async def get_hall(request: web.Request) -> dict[str, Any]:
    return hall_view(server_of(request).runtime)


@api.get("/windows", response=list[WindowOut], roles=READERS,
         summary="Every window's live state", tags=("windows",))
async def list_windows(request: web.Request) -> list[WindowOut]:
    server = server_of(request)
    return [window_out(server, w.id) for w in server.runtime.engine.windows()]


@api.get("/windows/{window_id}", response=WindowOut, roles=READERS,
         summary="One window's live state", tags=("windows",))
async def get_window(request: web.Request, window_id: str) -> WindowOut:
    return window_out(server_of(request), server_of(request).runtime.engine.window(window_id).id)


class ServiceOut(BaseModel):
    id: str
    name: str
    category: str
    prefix: str
    open: bool
    waiting: int
    open_windows: int
    estimated_minutes: float | None
    daily_quota: int | None
    issued_today: int
    text: TicketText | None
    closed_reason: str | None = Field(
        None, description="Why a ticket would be refused now: outside_hours, quota_exhausted"
                          " or no_open_window (the engine's order); None when it is taken")


class TicketQuery(BaseModel):
    status: str | None = Field(None, description="waiting, called, serving, held, finished...")
    service: str | None = None
    limit: int = Field(200, ge=1, le=5000)


@api.get("/services", response=list[ServiceOut], tags=("services",),
         summary="Services with waiting counts, estimates and their ticket text (Q4, Q14)")
async def list_services(request: web.Request) -> list[ServiceOut]:
    return [
        ServiceOut(
            id=s.id, name=s.name, category=s.category, prefix=s.prefix, open=s.open,
            waiting=s.waiting, open_windows=s.open_windows,
            estimated_minutes=s.estimated_minutes, daily_quota=s.daily_quota,
            issued_today=s.issued_today, text=text_out(s.text),
            closed_reason=closed_reason(server_of(request), s.id, s.open_windows),
        )
        for s in service_views(server_of(request).runtime)
    ]


def closed_reason(server: HallServer, service_id: str, open_windows: int) -> str | None:
    """The engine's checks before it issues, in its order, so a kiosk greys a service out
    with the reason it would be refused with (Q4)."""
    service = server.runtime.engine.layout.services[service_id]  # with managers' changes
    if not service.hours.is_open(server.runtime.clock.now()):
        return "outside_hours"
    quota = service.daily_quota
    if quota is not None and server.runtime.engine.issued_today(service_id) >= quota:
        return "quota_exhausted"
    return "no_open_window" if open_windows == 0 else None


class Interval(BaseModel):
    from_: str = Field(alias="from", pattern=r"^\d\d:\d\d$", description="HH:MM")
    to: str = Field(pattern=r"^\d\d:\d\d$", description="HH:MM; 24:00 is midnight")


class ServiceTerms(BaseModel):
    hours: list[Interval] = Field(min_length=1, max_length=12,
                                  description="On the weekdays the configuration gives")
    daily_quota: int | None = Field(None, ge=0, description="None: unlimited")


class ServiceTermsOut(BaseModel):
    id: str
    hours: list[tuple[str, str]]
    daily_quota: int | None
    seq: int | None


@api.put("/services/{service_id}/terms", body=ServiceTerms, response=ServiceTermsOut,
         roles=MANAGERS, tags=("configuration",),
         summary="Change a service's opening hours and daily quota from now on (Q4, Q14)")
async def set_service_terms(
    request: web.Request, service_id: str, body: ServiceTerms,
) -> ServiceTermsOut:
    principal = require(request, *(Role(r) for r in MANAGERS))
    hours = [[i.from_, i.to] for i in body.hours]
    audit = AuditEntry(principal, "service.terms", service_id,
                       {"hours": hours, "daily_quota": body.daily_quota})
    stored = await execute(request, "set_service_terms", service_id, hours, body.daily_quota,
                           audit=audit)
    event = stored[0].event
    return ServiceTermsOut(id=service_id, hours=[tuple(i) for i in event.hours],
                           daily_quota=event.daily_quota, seq=last_seq(stored))


@api.get("/tickets", query=TicketQuery, response=list[TicketOut], roles=READERS,
         summary="Today's tickets, oldest first", tags=("tickets",))
async def list_tickets(request: web.Request, query: TicketQuery) -> list[TicketOut]:
    server = server_of(request)
    found = []
    for ticket in server.runtime.engine.tickets():
        if query.status is not None and ticket.status.value != query.status:
            continue
        if query.service is not None and ticket.service != query.service:
            continue
        found.append(ticket_out(server, ticket))
        if len(found) >= query.limit:
            break
    return found


@api.get("/tickets/{ticket_id}", response=TicketOut, roles=(*TICKET_TAKERS, "backend"),
         summary="A ticket of today, with its place in the queue", tags=("tickets",))
async def get_ticket(request: web.Request, ticket_id: str) -> TicketOut:
    server = server_of(request)
    ticket = server.runtime.engine.ticket(ticket_id)
    out = ticket_out(server, ticket)
    out.nodes = [NodeOut(**asdict(node)) for node in await server.time_nodes.nodes(ticket)]
    return out


# ---------------------------------------------------------------- tickets


@api.post("/tickets", body=TakeTicket, response=TicketOut, status=201, roles=TICKET_TAKERS,
          summary="Take a ticket (kiosk, window or console)", tags=("tickets",))
async def take_ticket(request: web.Request, body: TakeTicket) -> TicketOut:
    principal = require(request, *(Role(r) for r in TICKET_TAKERS))
    server = server_of(request)
    if body.source is Source.ID_CARD and not (body.identity and body.identity.id_number):
        raise Problem(422, "identity_required", "An ID-card ticket needs the ID number")
    if body.source is Source.PHONE and not (body.identity and body.identity.phone):
        raise Problem(422, "identity_required", "A phone ticket needs the phone number")
    if principal.role is Role.DEVICE:
        kiosk_print.refuse_unprintable(server, principal.id)
    if body.appointment_code is not None:
        return await check_in(request, principal, body.appointment_code)
    if body.service is None:
        assert body.identity is not None and body.identity.id_number is not None
        return await check_in(request, principal, None, body.identity.id_number)
    if body.source is Source.PRIORITY:
        await check_priority(server, principal, body)
    citizen: int | None = None
    if body.identity is not None:
        identity = Identity(body.identity.name, body.identity.id_number, body.identity.phone)
        citizen = await server.citizens.save(identity)
    try:
        stored = await execute(
            request,
            "issue",
            body.service,
            body.source,
            citizen_ref=None if citizen is None else str(citizen),
            priority_group=body.priority_group,
            audit=staff_audit(principal, "ticket.issue", body.service),
        )
    except BaseException:
        if citizen is not None:
            await server.citizens.forget(citizen)
        raise
    ticket = server.runtime.engine.ticket(stored[0].event.ticket_id)
    if principal.role is Role.DEVICE:
        kiosk_print.print_at_kiosk(server, principal.id, ticket.id)
    return ticket_out(server, ticket, last_seq(stored))


PRIORITY_STATUS = {
    priority.WRONG_PASSWORD: 403,
    priority.UNKNOWN_GROUP: 422,
    priority.TOO_MANY_ATTEMPTS: 429,
}


async def check_priority(server: HallServer, principal: Principal, body: TakeTicket) -> None:
    """Q2: the group's password, whoever asks. Failures are counted per caller (a
    kiosk's token, a clerk), together with the same name's MQTT attempts."""
    assert body.priority_group is not None and body.priority_password is not None
    try:
        await server.priority.check(
            principal.id, body.priority_group, body.priority_password)
    except priority.PriorityRefused as refused:
        headers = None
        if refused.retry_after is not None:
            headers = {"Retry-After": str(max(1, math.ceil(refused.retry_after)))}
        raise Problem(
            PRIORITY_STATUS[refused.code], refused.code, refused.message, headers=headers
        ) from refused


def staff_audit(principal: Principal, action: str, target: str) -> AuditEntry | None:
    """Tickets a kiosk prints are no staff action; those a clerk takes are."""
    return None if principal.role is Role.DEVICE else AuditEntry(principal, action, target)


async def check_in(
    request: web.Request, principal: Principal, code: str | None, id_number: str | None = None
) -> TicketOut:
    """An appointment becomes a ticket that the strategy calls at its slot (Q1),
    found by its code or, from an ID card, by the holder's ID number."""
    server = server_of(request)
    audit = staff_audit(principal, "appointment.check_in", code or "id_card")
    try:
        with storage_errors():
            if code is not None:
                stored = await checkin.check_in(server, code, audit=audit)
            else:
                assert id_number is not None
                stored = await checkin.check_in_by_id_number(server, id_number, audit=audit)
    except checkin.CheckInRefused as refused:
        status = 404 if refused.code in ("unknown_appointment", "no_appointment_today") else 409
        raise Problem(status, refused.code, refused.message) from refused
    ticket = server.runtime.engine.ticket(stored[0].event.ticket_id)  # type: ignore[attr-defined]
    if principal.role is Role.DEVICE:
        kiosk_print.print_at_kiosk(server, principal.id, ticket.id)
    return ticket_out(server, ticket, last_seq(stored))


@api.post("/tickets/{ticket_id}/cancel", body=Cancel, response=TicketOut, roles=TICKET_TAKERS,
          summary="Cancel a ticket", tags=("tickets",))
async def cancel_ticket(request: web.Request, ticket_id: str, body: Cancel) -> TicketOut:
    principal = require(request, *(Role(r) for r in TICKET_TAKERS))
    audit = AuditEntry(principal, "ticket.cancel", ticket_id, {"reason": body.reason})
    stored = await execute(request, "cancel", ticket_id, reason=body.reason, audit=audit)
    server = server_of(request)
    return ticket_out(server, server.runtime.engine.ticket(ticket_id), last_seq(stored))


# ---------------------------------------------------------------- windows


@api.post("/windows/{window_id}/login", body=LoginAtWindow, response=WindowOut,
          roles=WINDOW_ACTORS, summary="Log staff in at a window", tags=("windows",))
async def login(request: web.Request, window_id: str, body: LoginAtWindow) -> WindowOut:
    principal = require(request, *(Role(r) for r in WINDOW_ACTORS))
    if principal.role is Role.STAFF:
        if body.staff_id not in (None, principal.id):
            raise web.HTTPForbidden(text="staff log in as themselves")
        staff_id = principal.id
    elif body.staff_id is None:
        raise Problem(422, "staff_required", "Name the staff to log in (staff_id)")
    else:
        staff_id = body.staff_id
    audit = AuditEntry(principal, "window.login", window_id, {"staff_id": staff_id})
    stored = await execute(request, "login", window_id, staff_id, audit=audit)
    return window_out(server_of(request), window_id, last_seq(stored))


def _simple(operation: str, summary: str) -> None:
    async def handler(request: web.Request, window_id: str) -> WindowOut:
        return await window_action(request, window_id, operation)

    handler.__name__ = operation
    path = "/windows/{window_id}/" + operation.replace("_", "-")
    api.post(path, response=WindowOut, roles=WINDOW_ACTORS, summary=summary, tags=("windows",))(
        handler
    )


for _operation, _summary in (
    ("logout", "Log the staff out of a window"),
    ("call_next", "Call the next ticket by the window's strategy"),
    ("recall", "Call the current ticket again"),
    ("start", "The citizen has arrived: service starts"),
    ("finish", "Service done (a package goes on to its next service)"),
    ("skip", "The citizen did not come (no-show)"),
    ("hold", "Park the current citizen, who fetches a document"),
    ("resume", "End a pause"),
):
    _simple(_operation, _summary)


@api.post("/windows/{window_id}/call", body=NamedTicket, response=WindowOut,
          roles=WINDOW_ACTORS, summary="Call a named ticket from the waiting list",
          tags=("windows",))
async def call_ticket(request: web.Request, window_id: str, body: NamedTicket) -> WindowOut:
    return await window_action(request, window_id, "call_ticket", body.ticket_id)


@api.post("/windows/{window_id}/release", body=NamedTicket, response=WindowOut,
          roles=WINDOW_ACTORS, summary="A held citizen is back", tags=("windows",))
async def release(request: web.Request, window_id: str, body: NamedTicket) -> WindowOut:
    return await window_action(request, window_id, "release", body.ticket_id)


@api.post("/windows/{window_id}/transfer", body=Transfer, response=WindowOut,
          roles=WINDOW_ACTORS, summary="Transfer the current ticket", tags=("windows",))
async def transfer(request: web.Request, window_id: str, body: Transfer) -> WindowOut:
    return await window_action(
        request, window_id, "transfer", to_service=body.service, to_window=body.window
    )


@api.post("/windows/{window_id}/pause", body=Pause, response=WindowOut, roles=WINDOW_ACTORS,
          summary="Pause with a reason and a message for the window screen", tags=("windows",))
async def pause(request: web.Request, window_id: str, body: Pause) -> WindowOut:
    return await window_action(request, window_id, "pause", body.reason, message=body.message)


@api.post("/windows/{window_id}/close", response=WindowOut, roles=MANAGERS,
          summary="Take a window out of service", tags=("windows",))
async def close_window(request: web.Request, window_id: str) -> WindowOut:
    return await window_action(request, window_id, "close_window")


@api.post("/windows/{window_id}/open", response=WindowOut, roles=MANAGERS,
          summary="Put a closed window back in service", tags=("windows",))
async def open_window(request: web.Request, window_id: str) -> WindowOut:
    return await window_action(request, window_id, "open_window")


# ---------------------------------------------------------------- strategies


@api.put("/strategies", body=StrategyIn, roles=MANAGERS, tags=("configuration",),
         summary="Set the calling strategy for one window, a group, an area or all")
async def set_strategy(request: web.Request, body: StrategyIn) -> dict[str, Any]:
    principal = require(request, *(Role(r) for r in MANAGERS))
    try:
        spec = StrategySpec.from_json(body.rules)
    except StrategyError as exc:
        raise Problem(422, "bad_request", "The strategy is not valid", str(exc)) from exc
    audit = AuditEntry(
        principal, "strategy.set", f"{body.scope}:{body.target}", {"rules": spec.to_json()}
    )
    stored = await execute(
        request, "set_strategy", spec, scope=body.scope, target=body.target, audit=audit
    )
    window_ids = list(stored[0].event.window_ids)
    return {"windows": window_ids, "rules": spec.to_json(), "seq": last_seq(stored)}


# ---------------------------------------------------------------- sessions


@api.post("/auth/login", body=StaffLogin, response=SessionOut, tags=("auth",),
          summary="Staff log in with a password and get a session token")
async def staff_login(request: web.Request, body: StaffLogin) -> SessionOut:
    server = server_of(request)
    principal = await server.staff.authenticate(body.staff_id, body.password)
    if principal is None:
        raise Problem(401, "bad_credentials", "Unknown staff or wrong password")
    principal = Principal(principal.id, principal.role, principal.name, request.remote)
    token = await server.sessions.create(principal, request.remote)
    await server.audit.record(principal, "auth.login")
    return SessionOut(token=token, staff_id=principal.id, role=principal.role.value,
                      name=principal.name)


@api.post("/auth/logout", roles=PEOPLE, tags=("auth",), summary="End this session")
async def staff_logout(request: web.Request) -> None:
    principal = require(request)
    server = server_of(request)
    header = request.headers.get("Authorization", "")
    await server.sessions.revoke(header.removeprefix("Bearer ").strip())
    await server.audit.record(principal, "auth.logout")


__all__ = ["PRINCIPAL", "api"]
