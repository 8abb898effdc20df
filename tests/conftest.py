"""Real PostgreSQL for the tests, never a mock.

The server is the one named by ``HALL_TEST_DATABASE_URL``, else the machine's
local server when one answers on 127.0.0.1:5432, else an embedded one from
pgserver. The run makes a template database with every migration applied,
gives each test that asks for ``db_url`` a fresh copy of it (made ahead:
tests/spare_databases.py), and drops them all at the end.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import asyncpg
import pytest
from playwright.async_api import Browser

from hall.migrate import migrate
from hall.pg import start_embedded, with_database
from tests.browser_kit import SharedChromium, chromium
from tests.mqtt_kit import Mosquitto, start_mosquitto
from tests.pcsc_kit import Pcscd, require_system
from tests.spare_databases import SpareDatabases

pytest_plugins = ["tests.hang_guard"]

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"
PCSCD_TURN = Path("/tmp/smarthall-tests-pcscd.lock")
PCSCD_TURN_S = 100.0  # under the tests' 120 s timeout, so the wait fails with its reason


def wait_for_turn(lock_file: IO[str], limit_s: float, what: str) -> None:
    """Takes the file's lock, failing the test after ``limit_s`` of waiting."""
    deadline = time.monotonic() + limit_s
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail(f"waited {limit_s:g} s for {what}")
            time.sleep(0.1)


def answers(url: str) -> bool:
    async def probe() -> None:
        connection = await asyncpg.connect(url, timeout=3)
        await connection.close()

    try:
        asyncio.run(probe())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


async def _admin(url: str, *statements: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("HALL_TEST_DATABASE_URL")
    if configured:
        yield configured
    elif answers(LOCAL):
        yield LOCAL
    else:
        embedded = start_embedded(Path(tmp_path_factory.mktemp("pg")) / "data")
        try:
            yield embedded.url
        finally:
            embedded.close()


@pytest.fixture(scope="session")
def template_database(postgres_admin_url: str) -> Iterator[str]:
    name = f"smarthall_template_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(postgres_admin_url, f'CREATE DATABASE "{name}"'))

    async def apply() -> None:
        connection = await asyncpg.connect(with_database(postgres_admin_url, name))
        try:
            await migrate(connection)
        finally:
            await connection.close()

    asyncio.run(apply())
    try:
        yield name
    finally:
        asyncio.run(_admin(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def spare_databases(postgres_admin_url: str, template_database: str) -> Iterator[SpareDatabases]:
    spares = SpareDatabases(postgres_admin_url, template_database)
    try:
        yield spares
    finally:
        left = spares.close()
        asyncio.run(_admin(postgres_admin_url,
                           *(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in left)))


@pytest.fixture
def db_url(postgres_admin_url: str, spare_databases: SpareDatabases) -> Iterator[str]:
    """A fresh, migrated database of this test's own."""
    name = spare_databases.take()
    try:
        yield with_database(postgres_admin_url, name)
    finally:
        asyncio.run(_admin(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(db_url, min_size=1, max_size=4)
    try:
        yield created
    finally:
        await created.close()


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A Mosquitto of this test's own on a free port (anonymous, no persistence).

    Per test, so no retained message or session leaks between tests; it starts in
    about 20 ms. Fails, never skips, when Mosquitto is not installed.
    """
    broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def pcscd_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pcscd]:
    """One pcscd with the vpcd virtual reader per module. With several test workers,
    one module at a time holds it (a lock file); the next one's start waits for vpcd's
    port, which stays busy for a while after a pcscd stopped with a card in
    (tests/pcsc_kit.py vpcd_port_free)."""
    require_system()
    with PCSCD_TURN.open("w") as turn:
        wait_for_turn(turn, PCSCD_TURN_S, "pcscd, which another test worker holds")
        daemon = Pcscd(tmp_path_factory.mktemp("pcscd"))
        daemon.start()
        yield daemon
        daemon.stop()


@pytest.fixture
def pcscd(pcscd_daemon: Pcscd) -> Pcscd:
    """The module's pcscd, restarted first if it stopped answering during the test
    before: one stuck daemon fails one test, not the rest of the module."""
    pcscd_daemon.revive_if_stuck()
    return pcscd_daemon


@pytest.fixture(scope="session")
def shared_chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedChromium]:
    profile = tmp_path_factory.mktemp("chromium") / "profile"
    profile.mkdir()
    shared = SharedChromium(profile)
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
async def browser(shared_chromium: SharedChromium) -> AsyncIterator[Browser]:
    """Debian's Chromium, one per test process (tests/browser_kit.py SharedChromium);
    each page test gets browser contexts of its own, so nothing leaks between tests."""
    async with chromium(shared_chromium) as connected:
        yield connected
