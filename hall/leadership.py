"""Which process leads which hall of a city: PostgreSQL session advisory locks.

Every city process keeps one connection of its own (not from a pool: a pool's
reset would release its locks) and holds on it a member lock, so processes can
count each other in ``pg_locks``, and one lock per hall it leads. The locks live
exactly as long as the connection: a process that dies, is killed or loses its
database loses them at once, with no lease to expire and no heartbeat table.
Each round (every ``interval`` seconds) a process takes unled halls up to its
fair share (the halls split evenly by member slot, so the shares add up to
exactly the halls and nobody takes what another must give back) and gives back
what it holds beyond it, so halls spread again when a process joins. If its
connection is lost it stops leading everything before trying again: it can no
longer prove it leads.

The lock says who should lead; the hall's event sequence (its primary key)
fences a leader that has not noticed yet: its next commit fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from devices.client import stop_task
from hall.committer import STORAGE_ERRORS

log = logging.getLogger(__name__)

MEMBERS = 0x5348_0001
"""Advisory lock class of the member slots (the two-key form: class, slot)."""
HALLS = 0x5348_0002
"""Advisory lock class of the halls (class, ``hall_key``)."""
MAX_MEMBERS = 1024
ORPHAN_ROUNDS = 3
"""Rounds a hall may stay unled while everybody holds a fair share (processes that
counted members at different moments) before anyone takes it anyway."""

FIRST_RETRY, LAST_RETRY = 0.5, 5.0
"""Seconds between attempts to reach the database again, doubling."""


_HELD = """
SELECT objid::bigint FROM pg_locks
 WHERE locktype = 'advisory' AND classid = $1 AND objsubid = 2 AND granted
   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def hall_key(hall_id: str) -> int:
    """Stable across processes, versions and machines (Python's ``hash`` is not),
    and non-negative, as ``pg_locks`` shows it."""
    return int.from_bytes(hashlib.blake2b(hall_id.encode(), digest_size=4).digest()) & 0x7FFF_FFFF


async def held_halls(connection: asyncpg.Connection) -> set[int]:
    """The keys of the halls somebody leads now."""
    return {row[0] for row in await connection.fetch(_HELD, HALLS)}


Lead = Callable[[str], Awaitable[bool]]
"""Start leading a hall; False if it could not (its lock is given back)."""
Resign = Callable[[str], Awaitable[None]]


class Leadership:
    def __init__(
        self, url: str, hall_ids: Sequence[str], *, lead: Lead, resign: Resign,
        interval: float = 1.0,
    ) -> None:
        self.url = url
        self.hall_ids = tuple(hall_ids)
        self.keys = {hall_id: hall_key(hall_id) for hall_id in self.hall_ids}
        if len(set(self.keys.values())) != len(self.keys):
            raise ValueError("two hall ids share an advisory lock key; rename one")
        self.interval = interval
        self._lead = lead
        self._resign = resign
        self.led: set[str] = set()
        self.members = 0
        self.member_slots: list[int] = []
        self.slot: int | None = None
        self.joined = asyncio.Event()
        self.takeovers = 0
        """Halls this process started leading, over its life."""
        self._unled_rounds: Counter[str] = Counter()
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        """Set when the connection is lost or ``stop`` is called: ends the wait between rounds."""

    async def run(self) -> None:
        """Lead until ``stop``: a round in progress always finishes first."""
        delay = FIRST_RETRY
        while not self._stopping.is_set():
            try:
                await self._session()
            except STORAGE_ERRORS as exc:
                log.warning("leadership: database connection lost (%s); again in %.1f s",
                            exc, delay)
            finally:
                if self.joined.is_set():
                    delay = FIRST_RETRY  # it worked until now: the database is back soon
                self.joined.clear()
                await self._resign_all()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()
            delay = min(delay * 2, LAST_RETRY)

    async def stop(self, running: asyncio.Task[None], grace: float = 30.0) -> None:
        """End ``running`` (the task of ``run``) after its round, resigning every hall.

        Cancelling a round could leave a hall half started, with nobody to stop it
        (seen: a SIGTERM that came while a hall started left its device link running
        until the loop closed); so the round finishes, unless it outlasts ``grace``.
        The locks go with the connection."""
        self._stopping.set()
        self._wake.set()
        await asyncio.wait([running], timeout=grace)
        if not running.done():
            log.warning("leadership: the round did not end within %.0f s; cancelled", grace)
            await stop_task(running)
        await self._resign_all()

    async def _session(self) -> None:
        connection = await asyncpg.connect(self.url)
        self._lost.clear()
        if not self._stopping.is_set():
            self._wake.clear()

        def lost(_connection: asyncpg.Connection) -> None:
            self._lost.set()
            self._wake.set()

        connection.add_termination_listener(lost)
        try:
            self.slot = await self._join(connection)
            self.joined.set()
            log.info("leadership: joined the city as member %d", self.slot)
            while not self._stopping.is_set():
                await self._round(connection)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await self._wake.wait()
                if self._lost.is_set() or connection.is_closed():
                    raise ConnectionResetError("the leadership connection was closed")
        finally:
            self.slot = None
            connection.terminate()

    async def _join(self, connection: asyncpg.Connection) -> int:
        for slot in range(MAX_MEMBERS):
            if await connection.fetchval("SELECT pg_try_advisory_lock($1, $2)", MEMBERS, slot):
                return slot
        raise ConnectionRefusedError(f"more than {MAX_MEMBERS} city processes")

    def fair_share(self) -> int:
        """This process's target: the halls split as evenly as they go, the
        members with the lowest slots taking one more when they do not divide."""
        members = max(len(self.member_slots), 1)
        rank = self.member_slots.index(self.slot) if self.slot in self.member_slots else 0
        return len(self.hall_ids) // members + (rank < len(self.hall_ids) % members)

    async def _round(self, connection: asyncpg.Connection) -> None:
        self.member_slots = sorted(row[0] for row in await connection.fetch(_HELD, MEMBERS))
        self.members = len(self.member_slots)
        held = await held_halls(connection)
        target = self.fair_share()
        unled = [h for h in self.hall_ids if h not in self.led and self.keys[h] not in held]
        for hall_id in self.hall_ids:
            if hall_id in unled:
                self._unled_rounds[hall_id] += 1
            else:
                self._unled_rounds.pop(hall_id, None)
        random.shuffle(unled)  # processes racing for the same halls rarely pick alike
        locked: list[str] = []
        for hall_id in unled:
            if (len(self.led) + len(locked) >= target
                    and self._unled_rounds[hall_id] < ORPHAN_ROUNDS):
                continue
            if await connection.fetchval("SELECT pg_try_advisory_lock($1, $2)",
                                         HALLS, self.keys[hall_id]):
                locked.append(hall_id)
        # Started together: a takeover of many halls costs one restore's time, not the sum.
        started = await asyncio.gather(*(self._start(hall_id) for hall_id in locked))
        for hall_id, ok in zip(locked, started, strict=True):
            if ok:
                self.led.add(hall_id)
                self._unled_rounds.pop(hall_id, None)
                self.takeovers += 1
            else:
                await connection.fetchval("SELECT pg_advisory_unlock($1, $2)",
                                          HALLS, self.keys[hall_id])
        for hall_id in sorted(self.led)[: max(len(self.led) - target, 0)]:
            await self._give_back(connection, hall_id)

    async def _start(self, hall_id: str) -> bool:
        try:
            return await self._lead(hall_id)
        except Exception:
            log.exception("leadership: hall %s could not be started", hall_id)
            return False

    async def _give_back(self, connection: asyncpg.Connection, hall_id: str) -> None:
        """Stop first, then unlock: the next leader must not start while this one serves."""
        log.info("leadership: giving hall %s back (%d members, share %d)",
                 hall_id, self.members, self.fair_share())
        await self._stop(hall_id)
        await connection.fetchval("SELECT pg_advisory_unlock($1, $2)", HALLS, self.keys[hall_id])

    async def _resign_all(self) -> None:
        await asyncio.gather(*(self._stop(hall_id) for hall_id in sorted(self.led)))

    async def _stop(self, hall_id: str) -> None:
        self.led.discard(hall_id)
        try:
            await self._resign(hall_id)
        except Exception:
            log.exception("leadership: hall %s did not stop cleanly", hall_id)
