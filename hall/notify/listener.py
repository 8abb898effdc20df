"""``LISTEN hall_notify`` once per process, for every hall it serves.

The intake trigger names the hall in its notification's payload. A LISTEN holds
its connection for good, so one per hall would take a pool connection per hall:
a city process leading more halls than its pool has connections would wait for
ever on its first commit. One listener hands each notification to its hall.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from hall.committer import STORAGE_ERRORS

log = logging.getLogger(__name__)

CHANNEL = "hall_notify"

Wake = Callable[[], None]


class NotifyListener:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._halls: dict[str, set[Wake]] = {}
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, hall_id: str, wake: Wake) -> Callable[[], None]:
        """``wake`` is called for each notification about ``hall_id``, and whenever
        the listener (re)connects, since what was noted meanwhile went unheard.
        Returns the unsubscribe; the connection is held while anyone listens."""
        self._halls.setdefault(hall_id, set()).add(wake)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="notify-listener")
        wake()

        def unsubscribe() -> None:
            wakes = self._halls.get(hall_id, set())
            wakes.discard(wake)
            if not wakes:
                self._halls.pop(hall_id, None)
            if not self._halls and self._task is not None:
                self._task.cancel()
                self._task = None

        return unsubscribe

    async def close(self) -> None:
        task, self._task = self._task, None
        self._halls.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._listen()
            except STORAGE_ERRORS as exc:
                log.warning("notifications: not listening (%s); again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _listen(self) -> None:
        connection = await self.pool.acquire()
        lost = asyncio.Event()

        def terminated(*_: object) -> None:
            lost.set()

        try:
            connection.add_termination_listener(terminated)
            await connection.add_listener(CHANNEL, self._notified)
            for wakes in list(self._halls.values()):
                for wake in list(wakes):
                    wake()
            await lost.wait()
            raise ConnectionResetError("the listening connection was lost")
        finally:
            if not connection.is_closed():
                with contextlib.suppress(*STORAGE_ERRORS):
                    await connection.remove_listener(CHANNEL, self._notified)
            connection.remove_termination_listener(terminated)
            with contextlib.suppress(*STORAGE_ERRORS):
                await self.pool.release(connection)

    def _notified(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        for wake in list(self._halls.get(payload, ())):
            wake()
