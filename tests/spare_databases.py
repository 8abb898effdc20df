"""Fresh databases made ahead of the tests that take them.

``CREATE DATABASE ... TEMPLATE`` takes about 0.3 s (PostgreSQL copies the
template's files and writes them to its WAL), and some 500 tests take a database
each: made in a thread while the test before runs, a test finds its copy ready,
and the suite is minutes shorter on a slow machine.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import uuid

import asyncpg


class SpareDatabases:
    def __init__(self, admin_url: str, template: str, ahead: int = 2) -> None:
        self._admin_url = admin_url
        self._template = template
        self._ready: queue.Queue[str | BaseException] = queue.Queue(maxsize=ahead)
        self._stopping = threading.Event()
        self._maker = threading.Thread(target=lambda: asyncio.run(self._make()),
                                       name="spare-databases", daemon=True)
        self._maker.start()

    def take(self) -> str:
        """The name of a database of the caller's own, a copy of the template."""
        made = self._ready.get(timeout=120)
        if isinstance(made, BaseException):
            self._ready.put_nowait(made)  # the maker has stopped: the next test fails at once too
            raise RuntimeError("a spare test database could not be made") from made
        return made

    def close(self) -> list[str]:
        """Stops making them; returns the names made and never taken, to drop."""
        self._stopping.set()
        left = self._drain()
        self._maker.join(timeout=30)
        return left + self._drain()

    def _drain(self) -> list[str]:
        names: list[str] = []
        while True:
            try:
                made = self._ready.get_nowait()
            except queue.Empty:
                return names
            if isinstance(made, str):
                names.append(made)

    async def _make(self) -> None:
        try:
            connection = await asyncpg.connect(self._admin_url)
        except (OSError, asyncpg.PostgresError) as exc:
            self._ready.put(exc)
            return
        try:
            while not self._stopping.is_set():
                name = f"smarthall_test_{uuid.uuid4().hex[:12]}"
                try:
                    await connection.execute(
                        f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
                except (OSError, asyncpg.PostgresError) as exc:
                    self._ready.put(exc)
                    return
                if not self._hand_over(name):
                    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    def _hand_over(self, name: str) -> bool:
        """Waits (blocking this thread only) until a test takes one; False if stopping."""
        while not self._stopping.is_set():
            try:
                self._ready.put(name, timeout=0.2)
            except queue.Full:
                continue
            return True
        return False
