"""Citizens' ratings (D10), one way for every path in: the window's evaluation
terminal over MQTT, the window's device over REST, or an evaluation page that
holds the token its ``evaluation.request`` carried.

A rating is tied to the ticket, the window, the staff who served and, when
the backend has linked the ticket to a case (``case_progress``), the case. It
is stored once per ticket and window, and goes to the backend as an
``evaluation.recorded`` event on the log, which the backend follows on the
event stream. Row and event come together: when the event cannot be stored,
the row is taken back, so a retry can rate again and the backend never misses
a rating the hall kept.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg

from hall.committer import CommitFailed
from hall.eventstore import StoredEvent
from hall.hall_events import EvaluationRecorded
from hall.refusals import Refused
from hall.runtime import HallRuntime, Unavailable
from queueing import Ticket

TOKEN_LIFETIME = timedelta(hours=2)
"""How long an evaluation page may take to send its rating."""

Via = Literal["device", "token"]


class RatingRefused(Refused):
    """A rating not taken."""


@dataclass(frozen=True, slots=True)
class EvaluationGrant:
    """What one ``evaluation.request`` allows: rating this ticket at this window."""

    ticket_id: str
    window_id: str
    staff_id: str | None
    expires_at: datetime


def served_at(ticket: Ticket, window_id: str) -> str | None:
    """The service the ticket had at this window (the last one, for a package
    served there twice), or None when the window never called it."""
    for node in reversed(ticket.nodes):
        if node.window == window_id and node.kind == "called":
            return node.service
    return None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Evaluations:
    def __init__(self, runtime: HallRuntime, pool: asyncpg.Pool) -> None:
        self.runtime = runtime
        self.pool = pool
        self.hall_id = runtime.hall_id

    async def grant(self, ticket_id: str, window_id: str, staff_id: str | None) -> str:
        """A token for the evaluation page; only its digest is stored. Tokens past
        their time are swept here, so the table holds only the last hours'."""
        token = secrets.token_urlsafe(24)
        now = self.runtime.clock.now()
        expires = now + TOKEN_LIFETIME
        await self.pool.execute(
            "DELETE FROM evaluation_requests WHERE hall_id = $1 AND expires_at < $2",
            self.hall_id, now)
        await self.pool.execute(
            "INSERT INTO evaluation_requests"
            " (hall_id, token_sha256, ticket_id, window_id, staff_id, expires_at)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            self.hall_id, _digest(token), ticket_id, window_id, staff_id, expires)
        return token

    async def granted(self, token: str, ticket_id: str) -> EvaluationGrant:
        row = await self.pool.fetchrow(
            "SELECT ticket_id, window_id, staff_id, expires_at FROM evaluation_requests"
            " WHERE hall_id = $1 AND token_sha256 = $2", self.hall_id, _digest(token))
        if row is None or row["ticket_id"] != ticket_id:
            raise RatingRefused("bad_token", "the token is not one for rating this ticket", 403)
        if row["expires_at"] <= self.runtime.clock.now():
            raise RatingRefused("token_expired", "the evaluation page waited too long", 403)
        return EvaluationGrant(row["ticket_id"], row["window_id"], row["staff_id"],
                               row["expires_at"])

    async def case_of(self, ticket_id: str) -> str | None:
        """The case the backend last reported for the ticket, if any."""
        value = await self.pool.fetchval(
            "SELECT case_id FROM case_progress WHERE hall_id = $1 AND ticket_id = $2"
            " ORDER BY at DESC, id DESC LIMIT 1", self.hall_id, ticket_id)
        return None if value is None else str(value)

    async def rate(
        self, ticket_id: str, window_id: str, staff_id: str | None, rating: int,
        reasons: Sequence[str], *, via: Via, device_id: str | None = None,
        token: str | None = None,
    ) -> StoredEvent:
        """Store the rating and its event; ``RatingRefused`` with nothing stored
        when the window never served the ticket or it was rated there already."""
        ticket = self.runtime.engine.ticket(ticket_id)
        service = served_at(ticket, window_id)
        if service is None:
            raise RatingRefused("not_served_here",
                                f"{ticket.number} was not served at window {window_id}")
        case_id = await self.case_of(ticket.id)
        now = self.runtime.clock.now()
        row_id = await self.pool.fetchval(
            "INSERT INTO evaluations (hall_id, ticket_id, window_id, staff_id, rating, reasons,"
            " device_id, at, case_id, service_id, via)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10, $11)"
            " ON CONFLICT DO NOTHING RETURNING id",
            self.hall_id, ticket.id, window_id, staff_id, rating,
            json.dumps(list(reasons), ensure_ascii=False), device_id, now, case_id, service, via)
        if row_id is None:
            raise RatingRefused("already_rated", f"{ticket.number} was already rated at this "
                                "window")
        event = EvaluationRecorded(now, ticket.id, window_id, staff_id, case_id, service,
                                   rating, tuple(reasons), via)
        try:
            [stored] = await self.runtime.record([event])
        except (Unavailable, CommitFailed):
            await self.pool.execute("DELETE FROM evaluations WHERE id = $1", row_id)
            raise
        if token is not None:
            await self.pool.execute(
                "DELETE FROM evaluation_requests WHERE hall_id = $1 AND token_sha256 = $2",
                self.hall_id, _digest(token))
        return stored
