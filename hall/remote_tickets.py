"""Remote tickets of the mobile page (M1): a daily limit per phone number, and
the check token that lets the ticket's holder, and nobody else, follow its place.

The phone number is the only identity a remote ticket has, so the limit counts
by its keyed lookup hash, per business day, in one conditional upsert: two
requests racing for the last ticket of the day cannot both get it.

The token is a keyed hash of the ticket id (the lookup key of ``hall.pii``), so
it needs no storage, cannot be computed without the hall's key, and ticket ids,
which are sequential (2026-11-24-A001), do not give strangers each other's place.
"""

from __future__ import annotations

import base64
import hmac
from datetime import date

import asyncpg

from hall.pii import PHONE, Vault

TOKEN_FIELD = "ticket_token"


class RemoteTickets:
    def __init__(self, pool: asyncpg.Pool, vault: Vault, hall_id: str, per_day: int) -> None:
        self._pool = pool
        self._vault = vault
        self._hall_id = hall_id
        self.per_day = per_day

    def token(self, ticket_id: str) -> str:
        digest = self._vault.lookup_hash(TOKEN_FIELD, ticket_id)[:16]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def token_matches(self, ticket_id: str, token: str) -> bool:
        return hmac.compare_digest(self.token(ticket_id).encode(), token.encode())

    async def take(self, phone: str, day: date) -> bool:
        """One of the phone's tickets for the day; False when it has had them all."""
        if self.per_day <= 0:
            return False
        taken = await self._pool.fetchval(
            "INSERT INTO remote_ticket_quota (hall_id, day, phone_hmac, taken)"
            " VALUES ($1, $2, $3, 1) ON CONFLICT (hall_id, day, phone_hmac) DO UPDATE"
            " SET taken = remote_ticket_quota.taken + 1"
            " WHERE remote_ticket_quota.taken < $4 RETURNING taken",
            self._hall_id, day, self._vault.lookup_hash(PHONE, phone), self.per_day,
        )
        return taken is not None

    async def give_back(self, phone: str, day: date) -> None:
        """For a ticket the engine refused after all: it did not count."""
        await self._pool.execute(
            "UPDATE remote_ticket_quota SET taken = taken - 1 WHERE hall_id = $1"
            " AND day = $2 AND phone_hmac = $3 AND taken > 0",
            self._hall_id, day, self._vault.lookup_hash(PHONE, phone),
        )
