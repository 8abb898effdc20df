"""Group commit: every transition is durable before anyone hears of it, and
concurrent transitions share a transaction.

Operations run on the engine at once (it is fast and single-threaded), then
wait here. One writer task takes everything that queued up meanwhile and
writes it in one statement (a data-modifying CTE per table, atomic as any
single statement), on a connection of its own: a burst of N operations costs
one round trip and one fsync, with no BEGIN, COMMIT or pool reset between a
device's request and its reply. Only after the commit are the events
published and the callers answered. If a commit fails, that batch and everything queued behind
it (which may depend on it) fail together, and the runtime rebuilds the
engine from what is in the database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import asyncpg

from hall.eventstore import EVENTS, EventStore, StoredEvent, event_row
from hall.rows import SideTable

log = logging.getLogger(__name__)


STORAGE_ERRORS = (
    OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
"""What a database call may raise when the database fails under it.
``InternalClientError`` among them: a pooled connection whose server ended it
while it was idle can be handed out before it has closed, and refuses its next
statement with it ("cannot switch to state 12"). Unhandled, it would end the
writer task and leave every later change waiting for good."""


class CommitFailed(Exception):
    """The events were not written; nothing of the operation happened."""


class SideWrite(Protocol):
    """A row that must be stored in the same transaction as its events (an audit
    record, a device's reply kept for its retries); ``row`` gives its values in the
    order of its table's columns."""

    table: ClassVar[SideTable]

    def row(self) -> tuple[Any, ...]: ...


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
        hold_connection: bool = True,
    ) -> None:
        self.pool = pool
        self._hold = hold_connection
        """Keep the writer's connection between batches (one hall per server). A city
        process leading many halls gives it back to a pool of writers after each batch
        instead: a held connection per hall would exhaust the database's connections."""
        self.store = store
        self.next_seq = 1
        self._on_committed = on_committed
        self._on_failed = on_failed
        self.observe = observe
        """Told (seconds, events) after every commit; metrics plug in here."""
        self._max_batch = max_batch
        self._pending: list[Pending] = []
        self._connection: asyncpg.Connection | None = None
        """The writer's own: held from the first commit until a failure or ``close``."""
        self._statements: dict[tuple[SideTable, ...], str] = {}
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
            await self._drop_connection()

    async def _write(self, batch: list[Pending]) -> bool:
        flat = [stored for pending in batch for stored in pending.events]
        rows: dict[SideTable, list[tuple[Any, ...]]] = {EVENTS: [event_row(s) for s in flat]}
        for pending in batch:
            for side in pending.side:
                rows.setdefault(side.table, []).append(side.row())
        statement, args = self._statement(rows)
        started = time.perf_counter()
        try:
            connection = await self._writer()
            await connection.execute(statement, *args)
        except STORAGE_ERRORS as exc:
            log.error("commit of %d events failed: %s", len(flat), exc)
            failure = CommitFailed(f"the hall could not store the change: {exc}")
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(failure)
            self._fail_everything(failure)
            self._on_failed(exc)
            await self._drop_connection()
            return False
        except BaseException:  # cancelled mid-commit: the pool must get it back to close
            await self._drop_connection()
            raise
        self.observe(time.perf_counter() - started, len(flat))
        if not self._hold:
            await self._drop_connection()
        self._on_committed(flat)
        for pending in batch:
            if not pending.future.done():
                pending.future.set_result(pending.events)
        return True

    def _statement(self, rows: dict[SideTable, list[tuple[Any, ...]]]) -> tuple[str, list[Any]]:
        """One statement for the batch: asyncpg prepares it once per set of tables."""
        tables = tuple(rows)
        statement = self._statements.get(tables)
        if statement is None:
            parts, param = [], 2
            for index, table in enumerate(tables):
                parts.append(f"w{index} AS ({table.insert(param)})")
                param += len(table.columns)
            statement = self._statements[tables] = f"WITH {', '.join(parts)} SELECT 1"
        args: list[Any] = [self.store.hall_id]
        for table, values in rows.items():
            args.extend(table.arrays(values))
        return statement, args

    async def _writer(self) -> asyncpg.Connection:
        """The held connection, unless it closed while idle (the database restarted
        or ended the session): the pool took it back then, and a batch sent on it
        would fail though a fresh connection could store it."""
        if self._connection is not None and not _is_open(self._connection):
            await self._drop_connection()
        if self._connection is None:
            self._connection = await self.pool.acquire()
        return self._connection

    async def _drop_connection(self) -> None:
        """After a failure the connection may be broken: the next batch takes a new one."""
        connection, self._connection = self._connection, None
        await self._release(connection)

    async def _release(self, connection: asyncpg.Connection | None) -> None:
        if connection is None:
            return
        try:
            await self.pool.release(connection)
        except STORAGE_ERRORS as exc:
            log.warning("a database connection could not be returned to the pool: %s", exc)

    def _fail_everything(self, failure: CommitFailed) -> None:
        queued, self._pending = self._pending, []
        for pending in queued:
            if not pending.future.done():
                pending.future.set_exception(failure)
        self._idle.set()


def _is_open(connection: asyncpg.Connection) -> bool:
    try:
        return not connection.is_closed()
    except asyncpg.InterfaceError:  # a pool connection detached when it closed
        return False
