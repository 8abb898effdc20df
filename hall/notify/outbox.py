"""The ``outbox`` and ``outbox_attempts`` tables.

A row is ``pending`` until a sender claims it; the claim (``sending``, one more
attempt, a lease) is one statement, so two senders never take the same row.
What the gateway answered is recorded in one statement too: the attempt's row
and the message's new status (``sent``; ``pending`` again with the next try's
time; ``failed``) together. Times are the database's, so retries keep their
schedule whichever process picks them up.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg

from hall.notify.gateways import Delivery
from hall.rows import SideTable

OUTBOX = SideTable("outbox", (
    ("idem_key", "text"), ("rule", "text"), ("channel", "text"), ("gateway", "text"),
    ("citizen_id", "bigint"), ("ticket_id", "text"), ("service", "text"),
    ("template_id", "text"), ("text", "text"), ("params", "jsonb"),
), on_conflict="ON CONFLICT (hall_id, idem_key) DO NOTHING")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A message to send. A ``SideWrite``: it can go in the group commit of the
    events that caused it, like an audit record."""

    idem_key: str
    rule: str
    channel: str
    gateway: str
    citizen_id: int
    ticket_id: str | None
    service: str | None
    template_id: str
    text: str
    params: dict[str, str]

    table: ClassVar[SideTable] = OUTBOX

    def row(self) -> tuple[Any, ...]:
        return (self.idem_key, self.rule, self.channel, self.gateway, self.citizen_id,
                self.ticket_id, self.service, self.template_id, self.text,
                json.dumps(self.params, ensure_ascii=False))


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    idem_key: str
    rule: str
    channel: str
    gateway: str
    citizen_id: int | None
    ticket_id: str | None
    template_id: str
    text: str
    params: dict[str, str]
    attempts: int


_CLAIM = """
UPDATE outbox SET status = 'sending', attempts = attempts + 1,
       claimed_until = clock_timestamp() + make_interval(secs => $3)
WHERE id IN (
    SELECT id FROM outbox
    WHERE hall_id = $1 AND (
        (status = 'pending' AND next_attempt_at <= clock_timestamp())
        OR (status = 'sending' AND claimed_until < clock_timestamp()))
    ORDER BY next_attempt_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED)
RETURNING id, idem_key, rule, channel, gateway, citizen_id, ticket_id, template_id, text,
          params, attempts
"""

_FINISH = """
WITH attempt AS (
    INSERT INTO outbox_attempts (outbox_id, status, http_status, error, duration_ms)
    VALUES ($1, $3, $4, $5, $6)
)
UPDATE outbox SET
    status = CASE WHEN $3 = 'error' THEN 'pending' ELSE $3 END,
    next_attempt_at = clock_timestamp() + make_interval(secs => $7),
    claimed_until = NULL,
    last_error = $5,
    sent_at = CASE WHEN $3 = 'sent' THEN clock_timestamp() END
WHERE id = $1 AND status = 'sending' AND attempts = $2
"""

_INTERRUPTED = """
WITH cut AS (
    UPDATE outbox SET status = 'pending', claimed_until = NULL, next_attempt_at = clock_timestamp()
    WHERE hall_id = $1 AND status = 'sending'
    RETURNING id
)
INSERT INTO outbox_attempts (outbox_id, status, error)
SELECT id, 'interrupted', 'the hall stopped during delivery; sent again with the same key'
FROM cut
"""


class OutboxStore:
    def __init__(self, pool: asyncpg.Pool, hall_id: str) -> None:
        self._pool = pool
        self.hall_id = hall_id

    async def claim(self, limit: int, lease_seconds: float) -> list[Claimed]:
        rows = await self._pool.fetch(_CLAIM, self.hall_id, limit, lease_seconds)
        return [Claimed(r["id"], r["idem_key"], r["rule"], r["channel"], r["gateway"],
                        r["citizen_id"], r["ticket_id"], r["template_id"], r["text"],
                        json.loads(r["params"]), r["attempts"]) for r in rows]

    async def finish(self, claimed: Claimed, outcome: str, delivery: Delivery,
                     retry_in: float = 0.0) -> None:
        """``outcome``: ``sent``, ``error`` (tried again in ``retry_in`` s) or ``failed``."""
        await self._pool.execute(
            _FINISH, claimed.id, claimed.attempts, outcome, delivery.http_status,
            delivery.error, round(delivery.seconds * 1000), retry_in)

    async def take_back_interrupted(self) -> int:
        """At start: what the last run claimed and never recorded goes out again."""
        status = await self._pool.execute(_INTERRUPTED, self.hall_id)
        return int(status.split()[-1])

    async def seconds_to_next(self) -> float | None:
        """Until the earliest pending row is due (0 when one is), None when none waits."""
        value = await self._pool.fetchval(
            "SELECT extract(epoch FROM min(coalesce(CASE WHEN status = 'sending'"
            " THEN claimed_until END, next_attempt_at)) - clock_timestamp())"
            " FROM outbox WHERE hall_id = $1 AND status IN ('pending', 'sending')",
            self.hall_id)
        return None if value is None else max(0.0, float(value))

    async def counts(self) -> dict[str, int]:
        rows = await self._pool.fetch(
            "SELECT status, count(*) AS n FROM outbox WHERE hall_id = $1 GROUP BY status",
            self.hall_id)
        return {r["status"]: r["n"] for r in rows}

    async def told_ahead(self) -> set[str]:
        """The silent-calling keys of the last two days, without their channel."""
        rows = await self._pool.fetch(
            "SELECT idem_key FROM outbox WHERE hall_id = $1 AND rule = 'ahead'"
            " AND created_at > now() - interval '2 days'", self.hall_id)
        return {r["idem_key"].rsplit(":", 1)[0] for r in rows}

    async def recent(self, limit: int, status: str | None = None,
                     ticket_id: str | None = None, row_id: int | None = None
                     ) -> list[asyncpg.Record]:
        return list(await self._pool.fetch(
            "SELECT id, idem_key, rule, channel, gateway, citizen_id, ticket_id, service,"
            " template_id, text, status, attempts, next_attempt_at, last_error, created_at,"
            " sent_at FROM outbox WHERE hall_id = $1 AND ($2::text IS NULL OR status = $2)"
            " AND ($3::text IS NULL OR ticket_id = $3) AND ($4::bigint IS NULL OR id = $4)"
            " ORDER BY id DESC LIMIT $5",
            self.hall_id, status, ticket_id, row_id, limit))

    async def attempts_of(self, ids: Sequence[int]) -> dict[int, list[asyncpg.Record]]:
        rows = await self._pool.fetch(
            "SELECT outbox_id, at, status, http_status, error, duration_ms FROM outbox_attempts"
            " WHERE outbox_id = ANY($1::bigint[]) ORDER BY id", list(ids))
        found: dict[int, list[asyncpg.Record]] = {}
        for row in rows:
            found.setdefault(row["outbox_id"], []).append(row)
        return found

    async def retry(self, row_id: int) -> str | None:
        """A failed message gets a new round of attempts; returns the status it had
        (None when there is no such message), unchanged unless it was ``failed``."""
        async with self._pool.acquire() as connection, connection.transaction():
            status: str | None = await connection.fetchval(
                "SELECT status FROM outbox WHERE hall_id = $1 AND id = $2 FOR UPDATE",
                self.hall_id, row_id)
            if status == "failed":
                await connection.execute(
                    "UPDATE outbox SET status = 'pending', attempts = 0, last_error = NULL,"
                    " next_attempt_at = clock_timestamp() WHERE id = $1", row_id)
        return status
