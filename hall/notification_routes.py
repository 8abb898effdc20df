"""Notifications in the API: what was sent to whom and how each try went (for
the hall manager), a second round for a failed message, and a citizen's own
choice of channels for his ticket (Q11).

Addresses are shown masked: the manager needs to see that 138****5678 was
told, not the number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from hall.api.problems import Problem
from hall.auth import Role, require
from hall.notify.gateways import masked_address
from hall.routes import api, server_of
from hall.server import HallServer

MANAGERS = ("manager", "admin")
CHOOSERS = ("device", "staff", "manager", "admin", "backend")


class AttemptOut(BaseModel):
    at: datetime
    status: str = Field(description="sent, error (tried again), failed, interrupted")
    http_status: int | None
    error: str | None
    duration_ms: int | None


class NotificationOut(BaseModel):
    id: int
    key: str = Field(description="The idempotency key, also sent to the gateway")
    rule: str
    channel: str
    gateway: str
    to: str | None = Field(description="The address, masked; None when it is gone")
    ticket_id: str | None
    service: str | None
    template_id: str
    text: str
    status: str = Field(description="pending, sending, sent or failed")
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    tries: list[AttemptOut]


class NotificationQuery(BaseModel):
    status: Literal["pending", "sending", "sent", "failed"] | None = None
    ticket: str | None = Field(None, max_length=64)
    limit: int = Field(100, ge=1, le=1000)


class ChannelChoice(BaseModel):
    channels: list[Literal["sms", "wechat"]] = Field(
        max_length=2, description="Where the citizen wants to be told; [] for nowhere")
    wechat_openid: str | None = Field(
        None, min_length=6, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="The citizen's openid for the hall's WeChat account")


class ChannelChoiceOut(BaseModel):
    ticket_id: str
    channels: list[str]
    wechat: bool = Field(description="Whether a WeChat openid is known for the citizen")


async def _shown(server: HallServer, rows: list[Any]) -> list[NotificationOut]:
    notifications = server.notifications
    tries = await notifications.store.attempts_of([row["id"] for row in rows])
    shown = []
    for row in rows:
        to = None
        if row["citizen_id"] is not None:
            contact = await notifications.contacts.of(row["citizen_id"])
            address = None if contact is None else contact.address(row["channel"])
            to = None if address is None else masked_address(row["channel"], address)
        shown.append(NotificationOut(
            id=row["id"], key=row["idem_key"], rule=row["rule"], channel=row["channel"],
            gateway=row["gateway"], to=to, ticket_id=row["ticket_id"], service=row["service"],
            template_id=row["template_id"], text=row["text"], status=row["status"],
            attempts=row["attempts"],
            next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
            last_error=row["last_error"], created_at=row["created_at"], sent_at=row["sent_at"],
            tries=[AttemptOut(at=t["at"], status=t["status"], http_status=t["http_status"],
                              error=t["error"], duration_ms=t["duration_ms"])
                   for t in tries.get(row["id"], [])],
        ))
    return shown


async def _one(server: HallServer, notification_id: str) -> NotificationOut:
    if not notification_id.isdigit():
        raise Problem(404, "unknown_notification", f"No notification {notification_id!r}")
    rows = await server.notifications.store.recent(1, row_id=int(notification_id))
    if not rows:
        raise Problem(404, "unknown_notification", f"No notification {notification_id!r}")
    return (await _shown(server, rows))[0]


@api.get("/notifications", query=NotificationQuery, response=list[NotificationOut],
         roles=MANAGERS, tags=("notifications",),
         summary="Recent messages to citizens, newest first, with every delivery attempt")
async def list_notifications(request: web.Request, query: NotificationQuery
                             ) -> list[NotificationOut]:
    server = server_of(request)
    rows = await server.notifications.store.recent(query.limit, query.status, query.ticket)
    return await _shown(server, rows)


@api.get("/notifications/{notification_id}", response=NotificationOut, roles=MANAGERS,
         tags=("notifications",), summary="One message to a citizen and its attempts")
async def get_notification(request: web.Request, notification_id: str) -> NotificationOut:
    return await _one(server_of(request), notification_id)


@api.post("/notifications/{notification_id}/retry", response=NotificationOut, roles=MANAGERS,
          tags=("notifications",),
          summary="Give a failed message a new round of attempts")
async def retry_notification(request: web.Request, notification_id: str) -> NotificationOut:
    principal = require(request, Role.MANAGER, Role.ADMIN)
    server = server_of(request)
    found = await _one(server, notification_id)
    status = await server.notifications.retry(found.id)
    if status != "failed":
        raise Problem(409, "notification_not_failed",
                      f"Notification {found.id} is {status}; only a failed one is retried")
    await server.audit.record(principal, "notification.retry", str(found.id),
                              {"key": found.key})
    return await _one(server, notification_id)


@api.put("/tickets/{ticket_id}/notifications", body=ChannelChoice, response=ChannelChoiceOut,
         roles=CHOOSERS, tags=("notifications",),
         summary="The citizen's choice of SMS and/or WeChat for his ticket (Q11)")
async def choose_channels(request: web.Request, ticket_id: str, body: ChannelChoice
                          ) -> ChannelChoiceOut:
    principal = require(request, *(Role(role) for role in CHOOSERS))
    server = server_of(request)
    ticket = server.runtime.engine.ticket(ticket_id)
    if ticket.citizen_ref is None or not ticket.citizen_ref.isdigit():
        raise Problem(409, "ticket_without_citizen",
                      "The ticket was taken without a phone or ID: there is no one to tell")
    if "wechat" in body.channels and body.wechat_openid is None:
        contact = await server.notifications.contacts.of(int(ticket.citizen_ref))
        if contact is None or contact.openid is None:
            raise Problem(422, "openid_required", "WeChat needs the citizen's wechat_openid")
    channels: list[str] = list(dict.fromkeys(body.channels))
    citizen = int(ticket.citizen_ref)
    await server.notifications.contacts.choose(citizen, channels, body.wechat_openid)
    if principal.role is not Role.DEVICE:
        await server.audit.record(principal, "ticket.notifications", ticket_id,
                                  {"channels": channels})
    contact = await server.notifications.contacts.of(citizen)
    return ChannelChoiceOut(ticket_id=ticket_id, channels=channels,
                            wechat=contact is not None and contact.openid is not None)
