"""Versioned SQL migrations: ``hall/migrations/NNNN_name.sql``, applied in order,
each in its own transaction together with its row in ``schema_migrations``,
so a migration is either wholly there or not at all."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# One advisory lock id for "someone is migrating this database": two servers
# starting at once must not both apply the same migration.
_LOCK = 0x5348_4D49  # "SHMI"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available(folder: Path = MIGRATIONS) -> list[Migration]:
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path}: migration files are named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"{folder}: two migrations share a version number")
    return found


async def migrate(connection: asyncpg.Connection, folder: Path = MIGRATIONS) -> list[int]:
    """Apply what is missing; returns the versions applied now."""
    await connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version int PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied_now: list[int] = []
    await connection.execute("SELECT pg_advisory_lock($1)", _LOCK)
    try:
        rows = await connection.fetch("SELECT version FROM schema_migrations")
        done = {row["version"] for row in rows}
        known = available(folder)
        newer = sorted(done - {migration.version for migration in known})
        if newer:
            log.warning("the database has migrations this release does not know (%s): a newer "
                        "release upgraded it. This one runs on, as a rolling upgrade needs, "
                        "but finish the upgrade soon (docs/operations.md)",
                        ", ".join(f"{v:04d}" for v in newer))
        for migration in known:
            if migration.version in done:
                continue
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    migration.version,
                    migration.name,
                )
            log.info("applied migration %04d_%s", migration.version, migration.name)
            applied_now.append(migration.version)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK)
    return applied_now
