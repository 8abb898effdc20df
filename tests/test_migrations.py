"""The schema is made by versioned migrations, each applied once, whole."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from hall.migrate import available, migrate


async def test_every_migration_is_recorded_once(db_url: str) -> None:
    connection = await asyncpg.connect(db_url)
    try:
        assert await migrate(connection) == []
        rows = await connection.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in available()]
    finally:
        await connection.close()


async def test_a_failing_migration_leaves_nothing_behind(db_url: str, tmp_path: Path) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (x int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE half (x int); SELECT 1/0;")
    connection = await asyncpg.connect(db_url)
    try:
        await connection.execute("DROP TABLE schema_migrations")
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(connection, tmp_path)
        tables = {r["tablename"] for r in await connection.fetch("SELECT tablename FROM pg_tables")}
        assert "good" in tables
        assert "half" not in tables
        rows = await connection.fetch("SELECT version FROM schema_migrations")
        assert [row["version"] for row in rows] == [1]
    finally:
        await connection.close()


def test_migration_files_must_be_named_with_a_version(tmp_path: Path) -> None:
    (tmp_path / "create_things.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match=r"NNNN_name\.sql"):
        available(tmp_path)


async def test_a_database_newer_than_the_release_is_used_with_a_warning(
    db_url: str, caplog: pytest.LogCaptureFixture,
) -> None:
    connection = await asyncpg.connect(db_url)
    try:
        await connection.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_the_future')")
        assert await migrate(connection) == []
    finally:
        await connection.close()
    assert "migrations this release does not know (9999)" in caplog.text
