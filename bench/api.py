"""HTTP API throughput and latency, event-stream lag, beside the raw cost of a commit.

The issue's requirement: take-ticket / call / finish throughput and p50/p99
latency over HTTP, the highest sustained rate that keeps p99 under 100 ms, and
event-stream lag p99 with 200 subscribers; beside them, in the same run, the
raw cost of one asyncpg commit on the same database, so the ratio is visible.

How it measures, and why:

* The database is found as the tests find it (``HALL_BENCH_DATABASE_URL`` or
  ``HALL_TEST_DATABASE_URL``, else a local server on 127.0.0.1:5432, else an
  embedded pgserver); the bench makes a throwaway database on it, migrates it
  and drops it at the end, so it never touches a hall's data.
* The hall server runs in a separate process (``run_hall.py``), as in
  production: sharing one event loop with the load generator would charge the
  client's work to the server and hide queueing inside the server. The
  machine this was written on has 2 cores, shared by the client, the server
  and PostgreSQL, so the figures are a floor, not a ceiling.
* The hall is the demo hall with every service open around the clock and no
  daily quotas, so nothing is refused for reasons the bench is not about; all
  42 windows are logged in through a manager session. Requests carry a device
  token (kept in memory by the server) rather than a staff session (one
  database lookup per request), as a kiosk and a window's clicker would.
* The raw commit is ``INSERT`` + ``COMMIT`` of one row into an ordinary table
  on one connection. Not a TEMP table: PostgreSQL does not flush the WAL when
  a transaction wrote only temporary tables, which would make the "raw
  commit" a no-op and the ratio meaningless.
* One request at a time first (/healthz, then take -> call-next -> finish at
  one window): each operation with its own commit and no queueing, the
  cleanest ratio to the raw commit.
* Throughput is closed-loop: C clients, each at its own window, repeat take a
  ticket -> call next -> finish for a fixed time (every window has a few
  tickets waiting first, so call-next always finds someone).
* The highest sustained rate is open-loop: take-ticket requests are sent on a
  fixed schedule at rising rates; latency counts from the scheduled moment, so
  a server that falls behind is not flattered by the client waiting for it
  (coordinated omission). A step passes when p99 < 100 ms, at least 90% of
  the target rate is achieved and under 1% of requests fail.
* Stream lag: 200 websocket subscribers (no compression), then tickets at a
  moderate rate; each ``ticket.issued`` event a subscriber receives is
  matched by ticket id to the moment its request was sent.
* Tickets are never all served, so the sections run one after another on a
  growing day (tens of thousands of tickets by the stream section in the full
  run), as a busy day does.
* CPU per section comes from /proc, in cores: the server, this client, every
  PostgreSQL process, and the rest of the machine ("other"): when "other" is
  large, something else ran meanwhile and the figures are noisier. The mean
  group-commit size and duration come from the server's /metrics.

Run ``python bench/api.py`` (about 80 s) or ``--quick`` (about 20 s).
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import asyncio  # noqa: E402
import base64  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Awaitable, Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from hall.auth import token_sha256  # noqa: E402
from hall.config import HallConfig, load_hall_config  # noqa: E402
from hall.migrate import migrate  # noqa: E402
from hall.pg import Database, start_embedded, with_database  # noqa: E402

LOCAL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEMO_CONFIG = ROOT / "config" / "demo-hall.toml"
MANAGER = ("liuyang", "hall-demo-2026")
"""The demo manager; its password is the demo's published one."""
P99_LIMIT_MS = 100.0
RATE_FLOOR = 0.9
"""A step must achieve this share of its target rate to count as sustained."""
ERROR_CEILING = 0.01
"""...and fail fewer than this share of its requests."""
MAX_IN_FLIGHT = 2000
"""An open-loop step with more requests outstanding is overloaded: stop it."""
REQUEST_TIMEOUT_S = 10.0
Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Settings:
    """How much work each section does; --quick shrinks time, never the
    subscriber count the issue names."""

    commits: int
    warmup: int
    clients: int
    closed_seconds: float
    rates: tuple[int, ...]
    step_seconds: float
    refine: bool
    """After the first failing step, try the rate half-way back once."""
    subscribers: int
    stream_rate: float
    stream_seconds: float


FULL = Settings(
    commits=1000,
    warmup=200,
    clients=16,
    closed_seconds=20.0,
    rates=(100, 200, 400, 800, 1600, 3200, 6400),
    step_seconds=5.0,
    refine=True,
    subscribers=200,
    stream_rate=20.0,
    stream_seconds=15.0,
)
QUICK = Settings(
    commits=200,
    warmup=50,
    clients=16,
    closed_seconds=3.0,
    rates=(100, 200, 400, 800, 1600, 3200, 6400),
    step_seconds=1.5,
    refine=False,
    subscribers=200,
    stream_rate=20.0,
    stream_seconds=3.0,
)


# ---------------------------------------------------------------- figures


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted samples."""
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def p50_p99(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return percentile(ordered, 50), percentile(ordered, 99)


def r2(value: float) -> float | None:
    """Rounded for the JSON line; NaN (no samples) becomes null."""
    return None if math.isnan(value) else round(value, 2)


# ---------------------------------------------------------------- database


async def _answers(url: str) -> bool:
    try:
        connection = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


def find_server(scratch: Path) -> tuple[str, str, Database | None]:
    """(admin url, where it came from, embedded handle to close): the same
    order as tests/conftest.py, so the bench runs wherever the tests run."""
    configured = os.environ.get("HALL_BENCH_DATABASE_URL") or os.environ.get(
        "HALL_TEST_DATABASE_URL"
    )
    if configured:
        return configured, "environment", None
    if asyncio.run(_answers(LOCAL)):
        return LOCAL, "local 127.0.0.1:5432", None
    embedded = start_embedded(scratch / "pgdata")
    return embedded.url, "embedded pgserver", embedded


async def create_database(admin_url: str, name: str) -> str:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = with_database(admin_url, name)
    connection = await asyncpg.connect(url)
    try:
        await migrate(connection)
    finally:
        await connection.close()
    return url


async def drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def drop_throwaway_database(admin_url: str, name: str) -> None:
    """At the end of a bench, whatever happened: a database left behind is said, not raised,
    so that the figures (or the reason there are none) still reach the reader."""
    try:
        asyncio.run(drop_database(admin_url, name))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"warning: could not drop database {name}: {exc}", file=sys.stderr)


@dataclass(slots=True)
class CommitResult:
    samples_ms: list[float]
    settings: dict[str, str]


async def bench_commit(url: str, count: int, gap_s: float = 0.0) -> CommitResult:
    """One row, one transaction, one connection: what one durable commit costs
    on this server, the floor under every state-changing request.

    ``gap_s`` apart, or back to back. A machine that idles between commits pays
    for waking up at each (PostgreSQL's backend and WAL writer asleep, a virtual
    CPU halted): on one slow 2-core VM 0.65 ms back to back, 1.1 ms 2 ms apart,
    1.85 ms 10 ms or more apart. A hall commits a few dozen times a second, so
    its commits pay that; back to back is the floor."""
    connection = await asyncpg.connect(url)
    try:
        settings = {
            name: str(await connection.fetchval(f"SHOW {name}"))
            for name in ("fsync", "synchronous_commit", "wal_sync_method", "server_version")
        }
        await connection.execute(
            "CREATE TABLE bench_commit (id bigserial PRIMARY KEY, at timestamptz NOT NULL,"
            " payload text NOT NULL)"
        )
        insert = "INSERT INTO bench_commit (at, payload) VALUES (now(), $1)"
        for _ in range(min(50, count)):  # warm the plan cache and the table's first pages
            async with connection.transaction():
                await connection.execute(insert, "warm-up")
        samples: list[float] = []
        for i in range(count):
            t0 = time.perf_counter()
            async with connection.transaction():
                await connection.execute(insert, f"row {i}")
            samples.append((time.perf_counter() - t0) * 1000)
            if gap_s:
                await asyncio.sleep(gap_s)
        await connection.execute("DROP TABLE bench_commit")
    finally:
        await connection.close()
    return CommitResult(samples, settings)


# ---------------------------------------------------------------- hall server


def bench_config(path: Path, device_token: str) -> HallConfig:
    """The demo hall, open around the clock with no quotas, plus our device.

    Every per-service and per-window ``hours``/``weekdays``/``daily_quota``
    line is single-line in the demo file, so line edits are enough; the
    result is loaded with the real loader, so a broken edit fails here.
    """
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    text = re.sub(r"^(hours|weekdays|daily_quota)\s*=.*\n", "", text, flags=re.M)
    text, hall_hours = re.subn(
        r"^working_hours\s*=.*$",
        'working_hours = ["00:00-23:59"]\nweekdays = [1, 2, 3, 4, 5, 6, 7]',
        text,
        count=1,
        flags=re.M,
    )
    device = (
        "[[auth.tokens]]\n"
        'name = "bench-device"\n'
        'role = "device"\n'
        f'token_sha256 = "{token_sha256(device_token)}"\n\n'
    )
    text, tokens = re.subn(r"^\[\[auth\.tokens\]\]\n", device + "[[auth.tokens]]\n", text,
                           count=1, flags=re.M)
    if hall_hours != 1 or tokens != 1:
        raise RuntimeError(f"{DEMO_CONFIG} changed shape; bench/api.py cannot adapt it")
    path.write_text(text, encoding="utf-8")
    return load_hall_config(path)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def process_cpu_seconds(pid: int | str) -> float:
    """user + system CPU of one process so far (Linux /proc); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class ServerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    base: str

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM (the server's clean stop), then SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        return self.process.returncode


def start_server(config_path: Path, db_url: str, scratch: Path, *,
                 env: dict[str, str] | None = None, command: Sequence[str] = (),
                 log_name: str = "server.log", log_level: str = "WARNING") -> ServerProcess:
    """``run_hall.py [command...] --config ... --port <free>`` on the throwaway database;
    ``env`` adds to (or overrides) the environment, e.g. the broker's URL or a data key
    that several processes share."""
    port = free_port()
    env = {
        **os.environ,
        "HALL_DATABASE_URL": db_url,
        "HALL_DATA_KEY": base64.b64encode(os.urandom(32)).decode(),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    log_path = scratch / log_name
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "run_hall.py"), *command, "--config", str(config_path),
             "--port", str(port), "--log-level", log_level],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the bench, which stops the server itself
        )
    return ServerProcess(process, log_path, f"http://127.0.0.1:{port}")


async def wait_ready(http: aiohttp.ClientSession, server: ServerProcess, limit_s: float,
                     path: str = "/readyz") -> float:
    """Seconds until ``path`` answers 200; raises with the server's log if it dies."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        if server.process.poll() is not None:
            raise RuntimeError(f"the hall server exited ({server.process.returncode}):\n"
                               + server.log_text()[-2000:])
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
            async with http.get(server.base + path) as response:
                if response.status == 200:
                    return time.perf_counter() - t0
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the hall server was not ready in {limit_s:.0f} s:\n"
                       + server.log_text()[-2000:])


async def metrics_snapshot(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """The group committer's histograms: sums and counts are enough for means."""
    async with http.get(base + "/metrics") as response:
        text = await response.text()
    wanted = ("hall_commit_events_sum", "hall_commit_events_count",
              "hall_commit_seconds_sum", "hall_commit_seconds_count")
    out: dict[str, float] = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            out[name] = float(value)
    return out


@dataclass(slots=True)
class CommitStats:
    commits: int
    events_per_commit: float
    ms_per_commit: float

    def line(self) -> str:
        return (f"group commit: {self.commits:,} commits, {self.events_per_commit:.1f} events "
                f"per commit, {self.ms_per_commit:.2f} ms per commit (means, server side)")


def commit_delta(before: dict[str, float], after: dict[str, float]) -> CommitStats:
    commits = after.get("hall_commit_events_count", 0) - before.get("hall_commit_events_count", 0)
    events = after.get("hall_commit_events_sum", 0) - before.get("hall_commit_events_sum", 0)
    seconds = after.get("hall_commit_seconds_sum", 0) - before.get("hall_commit_seconds_sum", 0)
    if commits <= 0:
        return CommitStats(0, float("nan"), float("nan"))
    return CommitStats(int(commits), events / commits, seconds * 1000 / commits)


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine, all cores (Linux /proc)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL process on this machine: the database shares
    the cores with client and server, so its share belongs in the picture."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
        except OSError:
            continue
        total += process_cpu_seconds(entry.name)
    return total


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU over one section in cores: the server process, this client
    process, PostgreSQL, and the whole machine's busy share; what is left is
    other work on the machine, which makes the figures noisier."""

    server: float
    client: float
    postgres: float
    machine: float

    @property
    def other(self) -> float:
        cores = os.cpu_count() or 1
        return max(0.0, self.machine * cores - self.server - self.client - self.postgres)

    def text(self) -> str:
        return (f"CPU cores: server {self.server:.2f}, client {self.client:.2f}, "
                f"postgres {self.postgres:.2f}, other {self.other:.2f}")


class Meter:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.t0 = time.perf_counter()
        self.server0 = server.cpu_seconds()
        self.client0 = time.process_time()
        self.postgres0 = postgres_cpu_seconds()
        self.machine0 = machine_jiffies()

    def read(self) -> Usage:
        elapsed = max(1e-9, time.perf_counter() - self.t0)
        busy0, total0 = self.machine0
        busy1, total1 = machine_jiffies()
        return Usage(
            (self.server.cpu_seconds() - self.server0) / elapsed,
            (time.process_time() - self.client0) / elapsed,
            # a backend that exits takes its CPU time along: never below zero
            max(0.0, postgres_cpu_seconds() - self.postgres0) / elapsed,
            (busy1 - busy0) / (total1 - total0) if total1 > total0 else float("nan"),
        )


# ---------------------------------------------------------------- client


class Hall:
    """The HTTP client's view of one hall server: pre-encoded bodies, the
    device token, and counts of every status seen."""

    def __init__(self, http: aiohttp.ClientSession, base: str, token: str) -> None:
        self.http = http
        self.api = base + "/api/v1"
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.refusals: Counter[str] = Counter()
        self._bodies: dict[str, bytes] = {}

    def _body(self, service: str) -> bytes:
        body = self._bodies.get(service)
        if body is None:
            body = json.dumps({"service": service}).encode()
            self._bodies[service] = body
        return body

    async def _post(self, op: str, path: str, body: bytes, headers: dict[str, str] | None = None
                    ) -> tuple[int, Any]:
        async with self.http.post(self.api + path, data=body,
                                  headers=headers or self.headers) as response:
            status = response.status
            data = await response.json(content_type=None)
        self.statuses[(op, status)] += 1
        if status >= 400 and isinstance(data, dict):
            self.refusals[f"{op} {status} {data.get('code', '?')}"] += 1
        return status, data

    async def take(self, service: str) -> tuple[int, Any]:
        return await self._post("take", "/tickets", self._body(service))

    async def call_next(self, window: str) -> tuple[int, Any]:
        return await self._post("call", f"/windows/{window}/call-next", b"{}")

    async def finish(self, window: str) -> tuple[int, Any]:
        return await self._post("finish", f"/windows/{window}/finish", b"{}")

    async def open_windows(self, windows: Sequence[str]) -> None:
        """A manager logs a made-up clerk in at every window: the engine only
        needs a staff id, and a service with no open window refuses tickets."""
        login = json.dumps({"staff_id": MANAGER[0], "password": MANAGER[1]}).encode()
        status, data = await self._post("auth", "/auth/login", login,
                                         {"Content-Type": "application/json"})
        if status != 200:
            raise RuntimeError(f"manager login failed: {status} {data}")
        manager = {"Authorization": f"Bearer {data['token']}",
                   "Content-Type": "application/json"}
        for window in windows:
            body = json.dumps({"staff_id": f"bench-{window}"}).encode()
            status, data = await self._post("login", f"/windows/{window}/login", body, manager)
            if status != 200:
                raise RuntimeError(f"cannot open window {window}: {status} {data}")


# ---------------------------------------------------------------- one at a time


async def bench_idle(hall: Hall, config: HallConfig, count: int,
                     idle: dict[str, list[float]]) -> None:
    """One request at a time: the HTTP floor (/healthz, no database), then one
    window's take -> call-next -> finish with nothing else going on: each
    operation alone (one commit each), the purest view of the ratio to the
    raw commit; under load the group commit shares commits instead."""
    window = sorted(config.layout.windows.values(), key=lambda w: w.id)[-1]
    service = sorted(window.services)[0]
    clock = time.perf_counter
    for _ in range(count):
        t0 = clock()
        async with hall.http.get(hall.base + "/healthz") as response:
            await response.read()
        idle["healthz"].append((clock() - t0) * 1000)
    for _ in range(count):
        t0 = clock()
        status, _ = await hall.take(service)
        t1 = clock()
        if status == 201:
            idle["take"].append((t1 - t0) * 1000)
        status, _ = await hall.call_next(window.id)
        t2 = clock()
        if status != 200:
            continue
        idle["call"].append((t2 - t1) * 1000)
        status, _ = await hall.finish(window.id)
        if status == 200:
            idle["finish"].append((clock() - t2) * 1000)


# ---------------------------------------------------------------- closed loop


@dataclass(slots=True)
class ClosedResult:
    seconds: float
    clients: int
    latency_ms: dict[str, list[float]]
    counts: dict[str, int]
    commit: CommitStats
    usage: Usage

    def ops_per_s(self, op: str | None = None) -> float:
        done = self.counts[op] if op else sum(self.counts.values())
        return done / self.seconds


async def clerk(hall: Hall, window: str, service: str, until: float,
                latency: dict[str, list[float]], counts: Counter[str]) -> None:
    """One window's loop: a citizen takes a ticket, the clerk calls the next
    one and finishes it. Only 2xx answers count as done operations."""
    clock = time.perf_counter
    while clock() < until:
        t0 = clock()
        status, _ = await hall.take(service)
        t1 = clock()
        if status == 201:
            latency["take"].append((t1 - t0) * 1000)
            counts["take"] += 1
        status, _ = await hall.call_next(window)
        t2 = clock()
        if status != 200:
            continue
        latency["call"].append((t2 - t1) * 1000)
        counts["call"] += 1
        status, _ = await hall.finish(window)
        t3 = clock()
        if status == 200:
            latency["finish"].append((t3 - t2) * 1000)
            counts["finish"] += 1


async def bench_closed(hall: Hall, server: ServerProcess, config: HallConfig,
                       settings: Settings) -> ClosedResult:
    windows = sorted(config.layout.windows.values(), key=lambda w: w.id)[: settings.clients]
    pairs = [(w.id, sorted(w.services)[0]) for w in windows]
    # a few tickets waiting per window first, so call-next always finds someone
    await asyncio.gather(*(hall.take(service) for _, service in pairs for _ in range(3)))
    warm: dict[str, list[float]] = {"take": [], "call": [], "finish": []}
    warm_until = time.perf_counter() + 0.5
    await asyncio.gather(*(clerk(hall, w, s, warm_until, warm, Counter()) for w, s in pairs))
    latency: dict[str, list[float]] = {"take": [], "call": [], "finish": []}
    counts: Counter[str] = Counter()
    before = await metrics_snapshot(hall.http, hall.base)
    meter = Meter(server)
    t0 = time.perf_counter()
    until = t0 + settings.closed_seconds
    await asyncio.gather(*(clerk(hall, w, s, until, latency, counts) for w, s in pairs))
    elapsed = time.perf_counter() - t0
    usage = meter.read()
    after = await metrics_snapshot(hall.http, hall.base)
    return ClosedResult(elapsed, len(pairs), latency, dict(counts), commit_delta(before, after),
                        usage)


# ---------------------------------------------------------------- open loop


@dataclass(slots=True)
class StepResult:
    target: int
    scheduled: int
    ok: int
    failed: int
    achieved: float
    latency_ms: list[float] = field(repr=False)
    overloaded: bool
    usage: Usage
    commit: CommitStats

    @property
    def p50(self) -> float:
        return p50_p99(self.latency_ms)[0]

    @property
    def p99(self) -> float:
        return p50_p99(self.latency_ms)[1]

    @property
    def passed(self) -> bool:
        return (
            not self.overloaded
            and self.ok > 0
            and self.p99 < P99_LIMIT_MS
            and self.achieved >= RATE_FLOOR * self.target
            and self.failed <= ERROR_CEILING * self.scheduled
        )

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        extra = " OVERLOADED (too many in flight)" if self.overloaded else ""
        return (f"  {self.target:>5,}/s: achieved {self.achieved:7.1f}/s, p50 {self.p50:7.2f} ms,"
                f" p99 {self.p99:8.2f} ms, failed {self.failed}/{self.scheduled};"
                f" {self.commit.events_per_commit:4.1f} events/commit of"
                f" {self.commit.ms_per_commit:5.2f} ms; {self.usage.text()} -> {verdict}{extra}")


async def open_loop(rate: float, seconds: float,
                    request: Callable[[int], Awaitable[bool]]) -> tuple[list[float], int, int,
                                                                         float, bool]:
    """Start ``request(i)`` at ``start + i / rate`` whatever the answers do.

    Returns (latencies from the scheduled moment in ms, ok, failed, seconds
    until the last answer, overloaded). Requests overdue when the loop wakes
    are all started at once, so timer granularity does not lower the rate.
    """
    count = max(1, round(rate * seconds))
    latency: list[float] = []
    outcome = {"ok": 0, "failed": 0}
    last_done = 0.0
    start = time.perf_counter() + 0.01

    async def one(i: int, due: float) -> None:
        nonlocal last_done
        try:
            good = await request(i)
        except (aiohttp.ClientError, OSError, TimeoutError):
            good = False
        done = time.perf_counter()
        last_done = max(last_done, done)
        if good:
            outcome["ok"] += 1
            latency.append((done - due) * 1000)
        else:
            outcome["failed"] += 1

    tasks: set[asyncio.Task[None]] = set()
    overloaded = False
    i = 0
    while i < count:
        now = time.perf_counter()
        while i < count and start + i / rate <= now:
            task = asyncio.create_task(one(i, start + i / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if len(tasks) > MAX_IN_FLIGHT:
            overloaded = True
            break
        if i < count:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    if tasks:
        _, pending = await asyncio.wait(set(tasks), timeout=REQUEST_TIMEOUT_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    failed = outcome["failed"] + (count - i)  # never sent: the step was overloaded
    elapsed = max(seconds, last_done - start)
    return latency, outcome["ok"], failed, elapsed, overloaded


async def rate_step(hall: Hall, server: ServerProcess, services: Sequence[str], rate: int,
                    seconds: float) -> StepResult:
    async def take(i: int) -> bool:
        status, _ = await hall.take(services[i % len(services)])
        return status == 201

    before = await metrics_snapshot(hall.http, hall.base)
    meter = Meter(server)
    latency, ok, failed, elapsed, overloaded = await open_loop(rate, seconds, take)
    usage = meter.read()
    after = await metrics_snapshot(hall.http, hall.base)
    return StepResult(rate, ok + failed, ok, failed, ok / elapsed, latency, overloaded, usage,
                      commit_delta(before, after))


async def bench_rates(hall: Hall, server: ServerProcess, config: HallConfig, settings: Settings,
                      say: Say) -> list[StepResult]:
    """Rising take-ticket rates until one fails; in the full run, once more
    half-way between the last pass and the first failure."""
    services = sorted(config.layout.services)
    steps: list[StepResult] = []
    for rate in settings.rates:
        step = await rate_step(hall, server, services, rate, settings.step_seconds)
        steps.append(step)
        say(step.line())
        await asyncio.sleep(0.3)  # let stragglers and the committer settle
        if not step.passed:
            break
    passed = [s for s in steps if s.passed]
    if settings.refine and passed and not steps[-1].passed:
        middle = (passed[-1].target + steps[-1].target) // 2
        step = await rate_step(hall, server, services, middle, settings.step_seconds)
        steps.append(step)
        say(step.line())
    return steps


# ---------------------------------------------------------------- stream


@dataclass(slots=True)
class StreamResult:
    subscribers: int
    connected: int
    connect_s: float
    events: int
    lag_ms: list[float]
    missing: int
    out_of_order: int
    closed_early: int
    take_latency_ms: list[float]
    usage: Usage


async def bench_stream(hall: Hall, server: ServerProcess, config: HallConfig,
                       settings: Settings) -> StreamResult:
    """Subscribers only record (arrival time, raw text); decoding waits until
    the load is over, so the client's own loop adds as little lag as it can."""
    url = hall.base.replace("http://", "ws://") + "/api/v1/events"
    received: list[list[tuple[float, str]]] = [[] for _ in range(settings.subscribers)]
    closed_early = 0
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    gate = asyncio.Semaphore(50)  # under the server's listen backlog
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as ws_http:

        async def connect() -> aiohttp.ClientWebSocketResponse:
            async with gate:
                return await ws_http.ws_connect(url, compress=0, autoping=True,
                                                headers={"Authorization":
                                                         hall.headers["Authorization"]})

        async def listen(ws: aiohttp.ClientWebSocketResponse,
                         into: list[tuple[float, str]]) -> None:
            nonlocal closed_early
            clock = time.perf_counter
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    into.append((clock(), message.data))
                else:
                    break
            if not stopping:
                closed_early += 1

        stopping = False
        t0 = time.perf_counter()
        sockets = await asyncio.gather(*(connect() for _ in range(settings.subscribers)))
        connect_s = time.perf_counter() - t0
        listeners = [asyncio.create_task(listen(ws, into))
                     for ws, into in zip(sockets, received, strict=True)]
        await asyncio.sleep(0.3)  # the server registers a subscriber just after the handshake
        try:
            services = sorted(config.layout.services)
            sent: dict[str, float] = {}
            take_latency: list[float] = []

            async def take(i: int) -> bool:
                t = time.perf_counter()
                status, data = await hall.take(services[i % len(services)])
                if status != 201:
                    return False
                sent[data["id"]] = t
                take_latency.append((time.perf_counter() - t) * 1000)
                return True

            meter = Meter(server)
            _, ok, _, _, _ = await open_loop(settings.stream_rate, settings.stream_seconds, take)
            # wait until every subscriber has every event, or 3 s
            deadline = time.perf_counter() + 3.0
            while time.perf_counter() < deadline:
                if all(_issued(into) >= ok for into in received):
                    break
                await asyncio.sleep(0.05)
            usage = meter.read()
        finally:
            stopping = True
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
            for task in listeners:
                task.cancel()
            await asyncio.gather(*listeners, return_exceptions=True)

    lag: list[float] = []
    missing = 0
    out_of_order = 0
    for into in received:
        seen: set[str] = set()
        last_seq = 0
        for arrived, raw in into:
            event = json.loads(raw)
            if event["seq"] <= last_seq:
                out_of_order += 1
            last_seq = max(last_seq, event["seq"])
            ticket = event.get("ticket_id")
            if event.get("type") == "ticket.issued" and ticket in sent and ticket not in seen:
                seen.add(ticket)
                lag.append((arrived - sent[ticket]) * 1000)
        missing += len(sent) - len(seen)
    return StreamResult(settings.subscribers, len(sockets), connect_s, len(sent), lag, missing,
                        out_of_order, closed_early, take_latency, usage)


def _issued(into: list[tuple[float, str]]) -> int:
    """A cheap count of ticket.issued messages, for the wait at the end."""
    return sum(1 for _, raw in into if '"ticket.issued"' in raw)


# ---------------------------------------------------------------- main


@dataclass(slots=True)
class Figures:
    commit: CommitResult | None = None
    closed: ClosedResult | None = None
    steps: list[StepResult] = field(default_factory=list)
    stream: StreamResult | None = None
    server_ready_s: float = float("nan")
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    idle_ms: dict[str, list[float]] = field(
        default_factory=lambda: {"healthz": [], "take": [], "call": [], "finish": []}
    )


async def run(settings: Settings, db_url: str, config_path: Path, config: HallConfig,
              device_token: str, scratch: Path, figures: Figures,
              servers: list[ServerProcess], say: Say) -> None:
    commit = await bench_commit(db_url, settings.commits)
    figures.commit = commit
    c50, c99 = p50_p99(commit.samples_ms)
    s = commit.settings
    say(f"raw asyncpg commit (INSERT 1 row + COMMIT, n={len(commit.samples_ms):,}): "
        f"p50 {c50:.3f} ms, p99 {c99:.3f} ms  [PostgreSQL {s['server_version']}, "
        f"fsync={s['fsync']}, synchronous_commit={s['synchronous_commit']}, "
        f"wal_sync_method={s['wal_sync_method']}]")

    server = start_server(config_path, db_url, scratch)
    servers.append(server)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        figures.server_ready_s = await wait_ready(http, server, 60.0)
        say(f"hall server pid {server.process.pid} ready in {figures.server_ready_s:.1f} s at "
            f"{server.base} ({len(config.layout.windows)} windows, "
            f"{len(config.layout.services)} services, open 00:00-23:59 every day)")
        hall = Hall(http, server.base, device_token)
        hall.statuses = figures.statuses
        await hall.open_windows(sorted(config.layout.windows))
        # warm-up: code paths, the connection pool, the server's pool of asyncpg connections
        services = sorted(config.layout.services)
        for offset in range(0, settings.warmup, 25):
            await asyncio.gather(*(hall.take(services[(offset + i) % len(services)])
                                   for i in range(25)))

        await bench_idle(hall, config, settings.warmup, figures.idle_ms)
        say(f"one request at a time (n={settings.warmup} each, one window):")
        for op, samples in figures.idle_ms.items():
            p50, p99 = p50_p99(samples)
            say(f"  {op:<7} p50 {p50:6.2f} ms   p99 {p99:7.2f} ms   "
                f"p50 / raw commit p50 = {p50 / c50:5.1f}")

        closed = await bench_closed(hall, server, config, settings)
        figures.closed = closed
        say(f"closed loop: {closed.clients} clients (one per window: take -> call-next -> "
            f"finish) for {closed.seconds:.1f} s")
        for op in ("take", "call", "finish"):
            p50, p99 = p50_p99(closed.latency_ms[op])
            say(f"  {op:<6} {closed.ops_per_s(op):7.1f} ops/s   p50 {p50:6.2f} ms   "
                f"p99 {p99:7.2f} ms   (n={closed.counts.get(op, 0):,})")
        take50 = p50_p99(closed.latency_ms["take"])[0]
        say(f"  all    {closed.ops_per_s():7.1f} ops/s; take p50 / raw commit p50 = "
            f"{take50 / c50:.1f}; {closed.usage.text()}")
        say("  " + closed.commit.line())

        say(f"open loop: take-ticket at rising rates, {settings.step_seconds:g} s a step; "
            f"pass = p99 < {P99_LIMIT_MS:g} ms, >= {RATE_FLOOR:.0%} of target, "
            f"< {ERROR_CEILING:.0%} failed")
        await asyncio.sleep(0.5)  # let the database settle after the closed loop
        figures.steps = await bench_rates(hall, server, config, settings, say)
        best = max((st.target for st in figures.steps if st.passed), default=0)
        capped = " (the highest step tried: the limit is higher)" if all(
            st.passed for st in figures.steps) else ""
        say(f"  highest sustained rate with p99 < {P99_LIMIT_MS:g} ms: {best:,} tickets/s{capped}")

        stream = await bench_stream(hall, server, config, settings)
        figures.stream = stream
        l50, l99 = p50_p99(stream.lag_ms)
        t50, t99 = p50_p99(stream.take_latency_ms)
        say(f"event stream: {stream.connected} subscribers connected in {stream.connect_s:.2f} s;"
            f" {stream.events} tickets at {settings.stream_rate:g}/s -> "
            f"{len(stream.lag_ms):,} deliveries")
        say(f"  lag (subscriber received - request sent): p50 {l50:.2f} ms, p99 {l99:.2f} ms; "
            f"missing {stream.missing}, out of order {stream.out_of_order}, "
            f"closed early {stream.closed_early}")
        say(f"  take-ticket meanwhile: p50 {t50:.2f} ms, p99 {t99:.2f} ms; "
            f"{stream.usage.text()}")
        if hall.refusals:
            say("refusals seen: " + ", ".join(f"{k} x{v}" for k, v in hall.refusals.most_common()))


def server_problems(server: ServerProcess | None) -> list[str]:
    """Lines of the server's log (run at WARNING) worth reporting."""
    if server is None:
        return []
    keep = ("WARNING", "ERROR", "CRITICAL", "Traceback", "Exception")
    return [line for line in server.log_text().splitlines() if any(k in line for k in keep)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter run, under 30 s")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    wall = time.perf_counter()

    def say(line: str) -> None:
        print(line, flush=True)

    say(f"api bench ({'quick' if args.quick else 'full'}), Python {platform.python_version()}, "
        f"{os.cpu_count()} cores shared by client, server and PostgreSQL; loopback only")
    scratch = Path(tempfile.mkdtemp(prefix="smarthall-bench-"))
    name = f"smarthall_bench_{uuid.uuid4().hex[:10]}"
    figures = Figures()
    servers: list[ServerProcess] = []
    admin_url: str | None = None
    embedded: Database | None = None
    created = False
    exit_code: int | None = None
    interrupted = False
    try:
        admin_url, origin, embedded = find_server(scratch)
        device_token = base64.urlsafe_b64encode(os.urandom(24)).decode()
        config_path = scratch / "bench-hall.toml"
        config = bench_config(config_path, device_token)
        db_url = asyncio.run(create_database(admin_url, name))
        created = True
        say(f"database: {origin}, throwaway database {name} (migrated)")
        asyncio.run(run(settings, db_url, config_path, config, device_token, scratch, figures,
                        servers, say))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        server = servers[0] if servers else None
        if server is not None:
            exit_code = server.stop()
        if created and admin_url is not None:
            drop_throwaway_database(admin_url, name)
        if embedded is not None:
            embedded.close()
        shutil.rmtree(scratch, ignore_errors=True)

    if interrupted:
        say(f"interrupted: hall server stopped (exit code {exit_code}), database {name} dropped")
        return 130
    problems = server_problems(server)
    errors_5xx = sum(n for (_, status), n in figures.statuses.items() if status >= 500)
    by_status: Counter[int] = Counter()
    for (_, status), n in figures.statuses.items():
        by_status[status] += n
    say(f"HTTP answers by status: {dict(sorted(by_status.items()))}; 5xx: {errors_5xx}")
    say(f"hall server stopped (exit code {exit_code}); {len(problems)} warning/error lines in "
        "its log" + (":" if problems else ""))
    for line in problems[:10]:
        say(f"  {line}")
    elapsed = time.perf_counter() - wall
    say(f"wall time {elapsed:.1f} s")
    print(json.dumps(summary(args.quick, settings, figures, problems, errors_5xx, exit_code,
                             elapsed), ensure_ascii=False, separators=(",", ":")))
    return 0


def summary(quick: bool, settings: Settings, figures: Figures, problems: list[str],
            errors_5xx: int, exit_code: int | None, elapsed: float) -> dict[str, Any]:
    assert figures.commit and figures.closed and figures.stream
    commit, closed, stream = figures.commit, figures.closed, figures.stream
    c50, c99 = p50_p99(commit.samples_ms)
    lat = {op: p50_p99(closed.latency_ms[op]) for op in ("take", "call", "finish")}
    l50, l99 = p50_p99(stream.lag_ms)
    best = max((st.target for st in figures.steps if st.passed), default=0)
    return {
        "bench": "api",
        "quick": quick,
        "python": platform.python_version(),
        "commit_p50_ms": r2(c50),
        "commit_p99_ms": r2(c99),
        "commit_n": len(commit.samples_ms),
        "pg_fsync": commit.settings["fsync"],
        "pg_synchronous_commit": commit.settings["synchronous_commit"],
        "clients": closed.clients,
        "closed_seconds": round(closed.seconds, 1),
        "ops_per_s": round(closed.ops_per_s(), 1),
        "ops_per_s_by_op": {op: round(closed.ops_per_s(op), 1) for op in lat},
        "take_p50_ms": r2(lat["take"][0]),
        "take_p99_ms": r2(lat["take"][1]),
        "call_p50_ms": r2(lat["call"][0]),
        "call_p99_ms": r2(lat["call"][1]),
        "finish_p50_ms": r2(lat["finish"][0]),
        "finish_p99_ms": r2(lat["finish"][1]),
        "take_over_commit_ratio": r2(lat["take"][0] / c50),
        "idle_p50_ms": {op: r2(p50_p99(v)[0]) for op, v in figures.idle_ms.items()},
        "idle_p99_ms": {op: r2(p50_p99(v)[1]) for op, v in figures.idle_ms.items()},
        "idle_take_over_commit_ratio": r2(p50_p99(figures.idle_ms["take"])[0] / c50),
        "events_per_commit": r2(closed.commit.events_per_commit),
        "server_cpu_closed": round(closed.usage.server, 2),
        "client_cpu_closed": round(closed.usage.client, 2),
        "postgres_cpu_closed": round(closed.usage.postgres, 2),
        "other_cpu_closed": round(closed.usage.other, 2),
        "max_rate_p99_under_100ms": best,
        "max_rate_is_top_step": all(st.passed for st in figures.steps),
        "rate_steps": [
            {"target": st.target, "achieved": round(st.achieved, 1), "p50_ms": r2(st.p50),
             "p99_ms": r2(st.p99), "failed": st.failed, "scheduled": st.scheduled,
             "overloaded": st.overloaded, "server_cpu": round(st.usage.server, 2),
             "client_cpu": round(st.usage.client, 2),
             "postgres_cpu": round(st.usage.postgres, 2),
             "other_cpu": round(st.usage.other, 2),
             "events_per_commit": r2(st.commit.events_per_commit), "pass": st.passed}
            for st in figures.steps
        ],
        "stream_lag_p50_ms": r2(l50),
        "stream_lag_p99_ms": r2(l99),
        "subscribers": stream.connected,
        "stream_events": stream.events,
        "stream_deliveries": len(stream.lag_ms),
        "stream_missing": stream.missing,
        "stream_out_of_order": stream.out_of_order,
        "stream_closed_early": stream.closed_early,
        "stream_take_p99_ms": r2(p50_p99(stream.take_latency_ms)[1]),
        "server_cpu_stream": round(stream.usage.server, 2),
        "http_5xx": errors_5xx,
        "server_log_problems": len(problems),
        "server_exit_code": exit_code,
        "wall_s": round(elapsed, 1),
        "settings": {"rates": list(settings.rates), "step_s": settings.step_seconds,
                     "stream_rate": settings.stream_rate, "stream_s": settings.stream_seconds},
    }


if __name__ == "__main__":
    raise SystemExit(main())
