"""Where the hall's PostgreSQL comes from.

``HALL_DATABASE_URL`` or the config's ``[database] url`` name a server; with
neither, the hall starts an embedded PostgreSQL from the ``pgserver`` package
(PostgreSQL 16 shipped in the wheel) with its data under ``var/``, so
``make run`` needs nothing but Python. pgserver run as root creates a system
user ``pgserver`` and loosens permissions on the data folder's parents.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)

DEFAULT_DATA_DIR = Path("var") / "pgdata"


@dataclass(slots=True)
class Database:
    url: str
    embedded: Any = None
    """The pgserver handle when we started the server ourselves."""

    def close(self) -> None:
        if self.embedded is not None:
            self.embedded.cleanup()
            self.embedded = None


def start_embedded(data_dir: Path) -> Database:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR as root
        import pgserver

        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(data_dir.resolve(), cleanup_mode="stop")
    log.info("embedded PostgreSQL running with its data in %s", data_dir)
    return Database(server.get_uri("postgres"), embedded=server)


def open_database(configured: str | None, data_dir: Path = DEFAULT_DATA_DIR) -> Database:
    url = os.environ.get("HALL_DATABASE_URL") or configured
    if url:
        return Database(url)
    return start_embedded(data_dir)


def with_database(url: str, name: str) -> str:
    """The same server's URL, naming another database on it."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def ensure_database(admin_url: str, name: str, *, fresh: bool = False) -> str:
    """The URL of database ``name`` on the server of ``admin_url``, created
    when missing; ``fresh`` drops it first (the throwaway demo hall)."""
    connection = await asyncpg.connect(admin_url)
    try:
        if fresh:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return with_database(admin_url, name)
