"""A private PostgreSQL that a test may stop and start at will.

The machine's own server on 5432 serves every other test and CI, so a test
that takes storage away under a running hall gets a cluster of its own:
``initdb`` into a fresh folder, listening on 127.0.0.1 on a free port only
(no Unix socket to clash with anything), trust authentication. Debian's
binaries are used when installed, else the ones in the ``pgserver`` wheel.
PostgreSQL refuses to run as root, so as root every command runs as the
``postgres`` (or ``pgserver``) system user, which then owns the folder; that
is why the folder is made under the system temp directory and not under
pytest's ``tmp_path``, whose parents only root may enter.

    with private_postgres() as pg:
        url = await pg.create_database("smarthall")
        pg.stop("fast")   # clients see the connection close; nothing is lost
        pg.start()
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg

from hall.broker import free_port
from hall.pg import with_database

HOST = "127.0.0.1"
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
RUN_AS = ("postgres", "pgserver")
"""System users PostgreSQL may run as when we are root: Debian's package
makes the first, pgserver the second."""
StopMode = Literal["smart", "fast", "immediate"]


def binaries() -> Path:
    """The newest Debian PostgreSQL, else pgserver's; never a skip."""
    debian = sorted(
        (path for path in DEBIAN_BINARIES.glob("*/bin") if (path / "initdb").exists()),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1]
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise RuntimeError("no PostgreSQL binaries: install postgresql or the pgserver package")
    return Path(spec.origin).parent / "pginstall" / "bin"


def run_as() -> str | None:
    """The user to run PostgreSQL as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in RUN_AS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError(f"as root, PostgreSQL needs one of the system users {RUN_AS}")


@dataclass(slots=True)
class PrivatePostgres:
    """One cluster: its binaries, folder, port and the user it runs as."""

    bin_dir: Path
    root: Path
    port: int
    user: str | None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/postgres"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({done.returncode}):\n{done.stderr}"
                f"\n{self.log_tail()}"
            )

    def init(self) -> None:
        """A new cluster that allows only local, password-less ``postgres``."""
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                  "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C.UTF-8")
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '{HOST}'\n"
                "unix_socket_directories = ''\nmax_connections = 40\n"
            )

    def start(self, timeout: float = 30) -> None:
        """Start and wait until it takes connections."""
        self._run("pg_ctl", "start", "-w", "-t", str(int(timeout)), "-D", str(self.data_dir),
                  "-l", str(self.log_path), timeout=timeout + 10)

    def stop(self, mode: StopMode = "fast", timeout: float = 30) -> None:
        """``fast`` ends every session and checkpoints; ``immediate`` is a crash
        of the database server (recovery from WAL at the next start)."""
        self._run("pg_ctl", "stop", "-w", "-t", str(int(timeout)), "-m", mode,
                  "-D", str(self.data_dir), timeout=timeout + 10)

    def running(self) -> bool:
        return (self.data_dir / "postmaster.pid").exists()

    async def create_database(self, name: str) -> str:
        """An empty database on this cluster; returns its URL."""
        connection = await asyncpg.connect(self.url)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return with_database(self.url, name)

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no PostgreSQL log)"
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "--- postgres.log ---\n" + "\n".join(text.splitlines()[-lines:])


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private cluster, stopped and deleted afterwards whatever happened."""
    user = run_as()
    root = Path(tempfile.mkdtemp(prefix="smarthall-pg-"))
    if user is not None:
        shutil.chown(root, user)
    pg = PrivatePostgres(binaries(), root, free_port(), user)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        if pg.running():
            pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
