"""Where a citizen can be told, and how he wants to be (Q11).

The phone comes from the citizen's sealed identity (``hall.citizens``); a
WeChat openid and the citizen's own choice of channels are kept beside it in
``notify_contacts``, the openid sealed with the same key. Both are read when a
message is made (to know whether to make it) and again when it is sent, so
the outbox itself holds no address.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from hall.citizens import CitizenStore
from hall.pii import Vault

OPENID = "wechat_openid"


@dataclass(frozen=True, slots=True)
class Contact:
    phone: str | None
    openid: str | None
    channels: tuple[str, ...] | None
    """The citizen's own choice; None when he made none."""

    def address(self, channel: str) -> str | None:
        return self.phone if channel == "sms" else self.openid if channel == "wechat" else None


class Contacts:
    def __init__(self, pool: asyncpg.Pool, vault: Vault, citizens: CitizenStore,
                 hall_id: str) -> None:
        self._pool = pool
        self._vault = vault
        self._citizens = citizens
        self._hall_id = hall_id

    async def of(self, citizen_id: int) -> Contact | None:
        identity = await self._citizens.load(citizen_id)
        if identity is None:
            return None
        row = await self._pool.fetchrow(
            "SELECT channels, wechat_openid_enc FROM notify_contacts"
            " WHERE citizen_id = $1 AND hall_id = $2", citizen_id, self._hall_id)
        if row is None:
            return Contact(identity.phone, None, None)
        sealed = row["wechat_openid_enc"]
        openid = None if sealed is None else self._vault.open(OPENID, sealed)
        return Contact(identity.phone, openid, tuple(row["channels"]))

    async def choose(self, citizen_id: int, channels: Sequence[str],
                     openid: str | None) -> None:
        """A new openid replaces the old; none given keeps the one known."""
        sealed = None if openid is None else self._vault.seal(OPENID, openid)
        await self._pool.execute(
            "INSERT INTO notify_contacts (citizen_id, hall_id, channels, wechat_openid_enc)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (citizen_id) DO UPDATE SET"
            " channels = excluded.channels, updated_at = now(),"
            " wechat_openid_enc = coalesce(excluded.wechat_openid_enc,"
            " notify_contacts.wechat_openid_enc)",
            citizen_id, self._hall_id, list(channels), sealed)
