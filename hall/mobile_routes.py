"""The mobile page's API (M1): a remote ticket, its live place, and (in
``hall.appointment_routes`` and ``hall.backend_routes``) booking and the case
query by code.

Public, like the page: a remote ticket's identity is the phone number, limited
to ``[appointments.mobile] tickets_per_phone_per_day`` tickets a day, and its
place is shown only with the check token handed out with it.
"""

from __future__ import annotations

from datetime import date, datetime

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from hall.api.problems import Problem
from hall.pii import Identity
from hall.routes import TicketOut, api, execute, server_of, ticket_out
from hall.views import ticket_view
from queueing import Rejected, Source


class RemoteTicketIn(BaseModel):
    service: str = Field(max_length=64, description="A service id or a package id")
    phone: str = Field(max_length=20)
    name: str | None = Field(None, max_length=64)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        value = value.strip()
        if not (value.isdigit() and 7 <= len(value) <= 15):
            raise ValueError("a phone number is 7 to 15 digits")
        return value


class RemoteTicketOut(BaseModel):
    ticket: TicketOut
    token: str = Field(description="Shows the ticket's place: GET /mobile/tickets/{id}?token=")


class PositionQuery(BaseModel):
    token: str = Field(min_length=1, max_length=64)


class PositionOut(BaseModel):
    id: str
    number: str
    service: str
    service_name: str
    status: str
    people_ahead: int | None
    estimated_minutes: float | None
    window: str | None = Field(description="The window that called or serves the ticket")
    issued_at: datetime


def _business_day(request: web.Request) -> date:
    runtime = server_of(request).runtime
    return runtime.engine.day or runtime.clock.now().astimezone(runtime.config.timezone).date()


@api.post("/mobile/tickets", body=RemoteTicketIn, response=RemoteTicketOut, status=201,
          tags=("mobile",), summary="Take a ticket from the mobile page, a few a day per phone")
async def take_remote_ticket(request: web.Request, body: RemoteTicketIn) -> RemoteTicketOut:
    server = server_of(request)
    remote = server.appointments.remote
    day = _business_day(request)
    if not await remote.take(body.phone, day):
        raise Problem(429, "daily_limit_reached",
                      f"A phone number takes at most {remote.per_day} remote tickets a day")
    citizen = await server.citizens.save(Identity(body.name, None, body.phone))
    try:
        stored = await execute(request, "issue", body.service, Source.MOBILE,
                               citizen_ref=str(citizen))
    except BaseException:
        await server.citizens.forget(citizen)
        await remote.give_back(body.phone, day)
        raise
    ticket = server.runtime.engine.ticket(stored[0].event.ticket_id)
    return RemoteTicketOut(ticket=ticket_out(server, ticket, stored[-1].seq),
                           token=remote.token(ticket.id))


@api.get("/mobile/tickets/{ticket_id}", query=PositionQuery, response=PositionOut,
         tags=("mobile",), summary="A ticket's live place, with the token it came with")
async def ticket_position(request: web.Request, ticket_id: str, query: PositionQuery
                          ) -> PositionOut:
    """A wrong token and an unknown ticket get the same 404, so the answer tells a
    stranger nothing about which tickets exist."""
    server = server_of(request)
    unknown = Problem(404, "unknown_ticket", "No such ticket, or not with this token")
    if not server.appointments.remote.token_matches(ticket_id, query.token):
        raise unknown
    try:
        view = ticket_view(server.runtime, ticket_id)
    except Rejected as error:
        raise unknown from error
    return PositionOut(
        id=view.id, number=view.number, service=view.service, service_name=view.service_name,
        status=view.status, people_ahead=view.people_ahead,
        estimated_minutes=view.estimated_minutes, window=view.window, issued_at=view.issued_at,
    )
