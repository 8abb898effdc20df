"""Group commit: every transition is durable before anyone hears of it, and
concurrent transitions share a transaction.

Operations run on the engine at once (it is fast and single-threaded), then
wait here. One writer task takes everything that queued up meanwhile and
writes it in one transaction, so a burst of N operations costs about one
commit, not N. Only after the commit are the events published and the
callers answered. If a commit fails, that batch and everything queued behind
it (which may depend on it) fail together, and the runtime rebuilds the
engine from what is in the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg

from hall.eventstore import EventStore, StoredEvent

log = logging.getLogger(__name__)


class CommitFailed(Exception):
    """The events were not written; nothing of the operation happened."""


class SideWrite(Protocol):
    """A row that must be stored in the same transaction as its events (an
    audit record, a device's reply kept for its retries). Rows of one class
    are written together, one statement for the whole batch."""

    @classmethod
    async def write_many(
        cls, connection: asyncpg.Connection, hall_id: str, rows: Sequence[Any]
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Pending:
    events: list[StoredEvent]
    side: tuple[SideWrite, ...]
    future: asyncio.Future[list[StoredEvent]]


class GroupCommitter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        *,
        on_committed: Callable[[Sequence[StoredEvent]], None],
        on_failed: Callable[[BaseException], None],
        observe: Callable[[float, int], None] = lambda seconds, size: None,
        max_batch: int = 5000,
    ) -> None:
        self.pool = pool
        self.store = store
        self.next_seq = 1
        self._on_committed = on_committed
        self._on_failed = on_failed
        self.observe = observe
        """Told (seconds, events) after every commit; metrics plug in here."""
        self._max_batch = max_batch
        self._pending: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(
        self, stored: list[StoredEvent], side: Sequence[SideWrite] = ()
    ) -> asyncio.Future[list[StoredEvent]]:
        """Queue events that already carry their sequence numbers, with the
        rows that must be stored together with them."""
        future: asyncio.Future[list[StoredEvent]] = asyncio.get_running_loop().create_future()
        self._pending.append(Pending(stored, tuple(side), future))
        self._idle.clear()
        self._wakeup.set()
        return future

    async def drain(self) -> None:
        """Wait until everything queued so far is written (or failed)."""
        await self._idle.wait()

    async def run(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending:
                    batch = self._pending[: self._max_batch]
                    del self._pending[: self._max_batch]
                    if not await self._write(batch):
                        break
                self._idle.set()
        finally:
            self._fail_everything(CommitFailed("the hall is shutting down"))

    async def _write(self, batch: list[Pending]) -> bool:
        flat = [stored for pending in batch for stored in pending.events]
        side: dict[type[SideWrite], list[SideWrite]] = {}
        for pending in batch:
            for row in pending.side:
                side.setdefault(type(row), []).append(row)
        started = time.perf_counter()
        connection: asyncpg.Connection | None = None
        try:
            connection = await self.pool.acquire()
            async with connection.transaction():
                await self.store.append(connection, flat)
                for kind, rows in side.items():
                    await kind.write_many(connection, self.store.hall_id, rows)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.error("commit of %d events failed: %s", len(flat), exc)
            failure = CommitFailed(f"the hall could not store the change: {exc}")
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(failure)
            self._fail_everything(failure)
            self._on_failed(exc)
            await self._release(connection)
            return False
        except BaseException:  # cancelled mid-commit: the pool must get it back to close
            await self._release(connection)
            raise
        self.observe(time.perf_counter() - started, len(flat))
        self._on_committed(flat)
        for pending in batch:
            if not pending.future.done():
                pending.future.set_result(pending.events)
        # Only now: returning a connection to the pool resets it, one more round
        # trip that the callers (and a device waiting on its reply) need not wait for.
        await self._release(connection)
        return True

    async def _release(self, connection: asyncpg.Connection | None) -> None:
        if connection is None:
            return
        try:
            await self.pool.release(connection)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("a database connection could not be returned to the pool: %s", exc)

    def _fail_everything(self, failure: CommitFailed) -> None:
        queued, self._pending = self._pending, []
        for pending in queued:
            if not pending.future.done():
                pending.future.set_exception(failure)
        self._idle.set()
