"""What the virtual caller (Q8, D9, D12; hall/static/caller/) needs besides the window
actions of ``hall.routes``:

- ``GET /pause-reasons``: the hall's pause reasons, for the pause dialog.
- ``GET /windows/{w}/current``: the ticket at the window with its time nodes and the
  citizen's identity masked (张*三, 510104********1234, 138****5678), for the staff
  logged in at that window or a manager. The event stream gives staff the masked
  citizen only on ``ticket.issued``, which a caller opened later never saw.
- ``GET /windows/{w}/today``: today's counts of the window (called, finished, no-shows,
  transfers, average service time), its held tickets, its pause, and how many wait for
  it and for each of its services. Counted from the engine's tickets and their time
  nodes, so it is right after a restart and resets with the day.
"""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, Field

from hall.api.problems import Problem
from hall.auth import Role, require
from hall.routes import PEOPLE, WINDOW_ACTORS, TicketOut, api, server_of, ticket_out
from hall.time_node_routes import node_outs

# ---------------------------------------------------------------- models


class PauseReasonOut(BaseModel):
    code: str
    label: str
    limit_minutes: float = Field(description="How long the pause may last before it is an "
                                             "attendance anomaly")
    message: str = Field(description="What the window screen shows unless the clerk writes "
                                     "another message")


class MaskedCitizen(BaseModel):
    name: str | None
    id_number: str | None
    phone: str | None


class CurrentOut(BaseModel):
    window: str
    ticket: TicketOut | None = Field(description="With its nodes; none when the window is free")
    service_name: str | None
    citizen: MaskedCitizen | None = Field(description="Masked; none for an anonymous ticket")
    called_at: datetime | None
    started_at: datetime | None
    waited_minutes: float | None = Field(description="From joining the queue to the call")


class HeldOut(BaseModel):
    id: str
    number: str
    service: str
    service_name: str


class ServiceWaiting(BaseModel):
    id: str
    name: str
    waiting: int


class PauseOut(BaseModel):
    reason: str
    label: str
    message: str
    since: datetime
    limit_minutes: float


class TodayOut(BaseModel):
    window: str
    called: int = Field(description="Tickets this window called today")
    finished: int = Field(description="Services finished here (a package's steps each count)")
    skipped: int = Field(description="No-shows: skipped or abandoned here")
    transferred: int = Field(description="Tickets sent on from here")
    average_service_minutes: float | None
    waiting: int = Field(description="Tickets this window may call now")
    services: list[ServiceWaiting]
    held: list[HeldOut]
    pause: PauseOut | None


# ---------------------------------------------------------------- routes


@api.get("/pause-reasons", response=list[PauseReasonOut], roles=WINDOW_ACTORS,
         tags=("windows",), summary="The hall's pause reasons, for a caller's pause dialog")
async def list_pause_reasons(request: web.Request) -> list[PauseReasonOut]:
    reasons = server_of(request).runtime.engine.layout.pause_reasons
    return [PauseReasonOut(code=r.code, label=r.label, limit_minutes=r.limit_minutes,
                           message=r.message) for r in reasons.values()]


@api.get("/windows/{window_id}/current", response=CurrentOut, roles=PEOPLE, tags=("windows",),
         summary="The ticket at the window, its time nodes and the citizen masked (Q8)")
async def current_ticket(request: web.Request, window_id: str) -> CurrentOut:
    principal = require(request, *(Role(r) for r in PEOPLE))
    server = server_of(request)
    engine = server.runtime.engine
    window = engine.window(window_id)
    if principal.role is Role.STAFF and window.staff != principal.id:
        raise Problem(403, "not_at_window", f"{principal.id} is not logged in at {window_id}")
    ticket = engine.current_ticket(window_id)
    if ticket is None:
        return CurrentOut(window=window.id, ticket=None, service_name=None, citizen=None,
                          called_at=None, started_at=None, waited_minutes=None)
    out = ticket_out(server, ticket)
    out.nodes = await node_outs(server, ticket.id)
    citizen = None
    if ticket.citizen_ref:
        identity = await server.citizens.load(int(ticket.citizen_ref))
        if identity is not None:
            shown = identity.masked()
            citizen = MaskedCitizen(name=shown.name, id_number=shown.id_number,
                                    phone=shown.phone)
    waited = None
    joined = ticket.enqueued_at or ticket.issued_at
    if ticket.called_at is not None:
        waited = round(max(0.0, (ticket.called_at - joined).total_seconds()) / 60, 1)
    return CurrentOut(
        window=window.id, ticket=out, service_name=engine.layout.services[ticket.service].name,
        citizen=citizen, called_at=ticket.called_at, started_at=ticket.started_at,
        waited_minutes=waited)


@api.get("/windows/{window_id}/today", response=TodayOut, roles=PEOPLE, tags=("windows",),
         summary="Today's counts of a window and who waits for it (Q8)")
async def window_today(request: web.Request, window_id: str) -> TodayOut:
    engine = server_of(request).runtime.engine
    window = engine.window(window_id)
    services = engine.layout.services
    called: set[str] = set()
    finished = skipped = transferred = 0
    durations: list[float] = []
    for ticket in engine.tickets():
        started: datetime | None = None
        called_at: datetime | None = None
        for node in ticket.nodes:
            if node.window != window.id:
                continue
            if node.kind == "called":
                called.add(ticket.id)
                called_at = node.at
            elif node.kind == "started":
                started = node.at
            elif node.kind in ("finished", "step_completed"):
                finished += 1
                # Finished without a start: served from the call, as the engine counts it.
                begun = called_at if started is None or started == node.at else started
                if begun is not None:
                    durations.append((node.at - begun).total_seconds() / 60)
                started = called_at = None
            elif node.kind in ("skipped", "abandoned"):
                skipped += 1
            elif node.kind == "transferred":
                transferred += 1
                started = called_at = None
    waiting = [ServiceWaiting(id=s, name=services[s].name, waiting=engine.waiting_count(s))
               for s in window.services]
    held = [engine.ticket(t) for t in window.held]
    pause = None
    if window.pause is not None:
        reason = window.pause.reason
        pause = PauseOut(reason=reason.code, label=reason.label, message=window.pause.message,
                         since=window.pause.since, limit_minutes=reason.limit_minutes)
    return TodayOut(
        window=window.id, called=len(called), finished=finished, skipped=skipped,
        transferred=transferred,
        average_service_minutes=round(sum(durations) / len(durations), 1) if durations else None,
        waiting=len(window.own) + sum(s.waiting for s in waiting),
        services=waiting,
        held=[HeldOut(id=t.id, number=t.number, service=t.service,
                      service_name=services[t.service].name) for t in held],
        pause=pause)


__all__ = ["api"]
