"""City load: N halls x windows x devices through one broker and the city processes.

Issue 8: N halls x windows x devices driven through the real broker and server
(not in-process shortcuts), a realistic day compressed in time (morning peak,
lunch dip), bounded in count and time, loopback only; sustained operations
per second, p50/p99 of kiosk request -> reply and call -> screen, event-stream
lag, server CPU and memory, and in the same run the raw broker round trip and
the raw commit, as ratios. Targets on the 2-core machine: 100 halls / 3,000
windows / 15,000 devices at 200 operations per second with call -> screen p99
under 50 ms and memory under 1 GB.

How it measures, and why:

* The machinery is bench/devices.py's (hall plans and files, the shared device
  connections, the Hub that timestamps every message in paho's callback, the
  call watch, the raw one-way and echo probes) and bench/api.py's (throwaway
  database, raw commit, process CPU): the same yardsticks in both benches.
* The city is generated in a scratch folder: N hall files (default 100 halls
  of 30 windows in 3 areas, 15 services, 150 devices: per window a call
  terminal, window screen, evaluation terminal and card reader; per area 2
  kiosks, a hall board and an LED strip; a hall-wide board, 4 announcers,
  document cameras up to the count), each with its own hall id, free HTTP port
  and a backend token for the event stream, and one city file naming them.
  Area, window and device ids carry the hall's prefix (``h007-w0003``,
  ``call-h007-w0003``), so one fleet and one Hub carry every hall.
* A throwaway Mosquitto (``hall.broker.start_broker``) and database, then
  ``--processes`` city processes (``run_hall.py city``), each its own
  subprocess with the shared broker, database and data key. The bench waits
  until ``/city/halls`` shows every hall led and the halls spread over the
  processes (at most ceil(halls / processes) each), each hall ready on its
  own port, every window open (REST, a manager per hall) and every device
  online (each hall's /metrics).
* The day: hall hours 09:00-17:00 in ``--seconds``, arrivals following a
  shape with a morning peak (10:30, 1.6 x the mean), a lunch dip (12:30,
  0.35 x) and a smaller afternoon peak, scaled so the mean is ``--rate``
  operations per second. A citizen makes four operations: a kiosk ticket,
  the window's call, start and finish, so citizens arrive at rate / 4 on
  average, open loop on a fixed schedule (bench/devices.py's ``on_schedule``),
  each at a hall chosen by its busyness (log-normal, some halls twice as busy
  as others), an area, a kiosk of that area and one of its services. A window
  whose area has someone waiting calls at once; the citizen walks up (0.2-0.8
  s), is served (exponential, mean ``seconds / 30`` clamped to 0.5-5 s) and
  the clerk finishes and calls the next. Every operation is a device message
  through the broker to the hall's leader and its reply back.
* Latencies count from the moment the operation was due (the schedule for a
  ticket, the clerk's decision for a call), so a client or server that falls
  behind is not flattered. Call -> screen is the first ``display`` on the
  window's screen that shows the window calling the number the reply gave;
  call -> board the same on the boards that show the window.
* Sustained operations per second: successful operations whose reply came
  within the day, over the day's length (the last citizens' calls and
  finishes trail the day by a service time, so it sits a little under the
  offered mean); also per hall hour, to see the peak and the dip.
* Event-stream lag: a websocket on the first ``--stream-halls`` halls'
  ``/api/v1/events?type=ticket.*`` with the backend token; for each operation
  on those halls, the time from its reply reaching the device to its event
  (``ticket.issued``/``called``/``started``/``finished``) reaching the stream.
* Server CPU per process (user + system from /proc, % of one core) over the
  day; RSS per process sampled every 0.5 s from start to stop, peak of the sum
  over processes (all of the run and during the day).
* Raw broker: one-way publish -> receive and echo A -> B -> A between two
  connections before the day, a one-way probe at 10/s during it; the raw
  commit is bench/api.py's INSERT + COMMIT on the same database. Ratios: each
  p99 over ``echo p99 + commit p50`` (one request/reply crossing of the broker
  and one commit: the least a device operation can cost) and over
  bench/devices.py's yardstick ``3 x one-way p99 + commit p50``.

Run ``python bench/city.py`` (100 halls, 150 s of day, about 5 minutes with
start-up) or ``--quick`` (10 halls, 10 s of day, about 30 s); ``--processes 2``
shares the halls between two processes. Every figure is in the JSON object on
the last line.
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
import bisect  # noqa: E402
import contextlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import uuid  # noqa: E402
from collections import Counter, deque  # noqa: E402
from collections.abc import Awaitable, Sequence  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from typing import Any  # noqa: E402

import aiohttp  # noqa: E402
import asyncpg  # noqa: E402

from bench.api import (  # noqa: E402
    CommitResult,
    CommitStats,
    Say,
    ServerProcess,
    bench_commit,
    commit_delta,
    create_database,
    drop_throwaway_database,
    find_server,
    free_port,
    machine_jiffies,
    metrics_snapshot,
    p50_p99,
    r2,
    server_problems,
    start_server,
    wait_ready,
)
from bench.devices import (  # noqa: E402
    REPLY_TIMEOUT_S,
    CallWatch,
    Fleet,
    LoadResult,
    Meter,
    Plan,
    Usage,
    WindowPlan,
    announce,
    make_plan,
    on_schedule,
    open_fleet,
    open_windows,
    q,
    raw_echo,
    raw_oneway,
    record_call,
    showing,
    stop_broker,
    subscribe_all,
    wait_online,
    write_config,
)
from devices.topics import DeviceKind  # noqa: E402
from hall.auth import token_sha256  # noqa: E402
from hall.broker import start_broker  # noqa: E402
from hall.pg import Database  # noqa: E402

TARGET_HALLS = 100
TARGET_WINDOWS = 3000
TARGET_DEVICES = 15000
TARGET_RATE = 200.0
SCREEN_P99_LIMIT_MS = 50.0
MEMORY_LIMIT_BYTES = 1_000_000_000
RATE_FLOOR = 0.95
"""Sustained counts as keeping up with the offered rate at this share of it: the
last citizens' calls and finishes trail the day by a service time."""

OPENING, CLOSING = 9.0, 17.0
DAY_SHAPE = ((9.0, 0.6), (9.5, 1.1), (10.0, 1.5), (10.5, 1.6), (11.0, 1.4), (11.5, 1.0),
             (12.0, 0.5), (12.5, 0.35), (13.0, 0.45), (13.5, 0.85), (14.0, 1.15),
             (14.5, 1.3), (15.0, 1.2), (15.5, 1.0), (16.0, 0.8), (16.5, 0.6), (17.0, 0.4))
"""(hall hour, relative arrivals): a morning peak, the lunch dip, a smaller afternoon peak."""
OPS_PER_CITIZEN = 4
"""Ticket, call, start, finish."""
EVENT_OF = {"take": "ticket.issued", "call": "ticket.called", "start": "ticket.started",
            "finish": "ticket.finished"}
PROBE_RATE = 10.0
BIRTH_HALLS = 25
"""Halls whose devices announce themselves at once; the hall processes them in turn."""
DRAIN_S = 20.0
STREAM_SETTLE_S = 0.5


@dataclass(frozen=True, slots=True)
class Settings:
    halls: int
    windows: int
    """Per hall, as devices and areas."""
    devices: int
    areas: int
    processes: int
    rate: float
    """Mean operations per second over the day."""
    seconds: float
    stream_halls: int
    devices_per_connection: int
    raw_n: int
    echo_seconds: float
    commits: int
    seed: int

    @property
    def service_mean_s(self) -> float:
        return min(5.0, max(0.5, self.seconds / 30))


FULL = Settings(halls=100, windows=30, devices=150, areas=3, processes=1, rate=TARGET_RATE,
                seconds=150.0, stream_halls=3, devices_per_connection=100, raw_n=1000,
                echo_seconds=5.0, commits=1000, seed=8)
QUICK = replace(FULL, halls=10, rate=40.0, seconds=10.0, stream_halls=2, raw_n=200,
                echo_seconds=1.0, commits=200)


# ---------------------------------------------------------------- the day


def day_shape(hour: float) -> float:
    """Relative arrivals at a hall hour, linear between DAY_SHAPE's points."""
    hours = [h for h, _ in DAY_SHAPE]
    i = min(max(bisect.bisect_right(hours, hour), 1), len(DAY_SHAPE) - 1)
    (h0, w0), (h1, w1) = DAY_SHAPE[i - 1], DAY_SHAPE[i]
    return w0 + (w1 - w0) * (min(max(hour, h0), h1) - h0) / (h1 - h0)


def shape_mean() -> float:
    area = sum((h1 - h0) * (w0 + w1) / 2
               for (h0, w0), (h1, w1) in itertools.pairwise(DAY_SHAPE))
    return area / (CLOSING - OPENING)


def hall_hour(offset: float, seconds: float) -> float:
    return OPENING + (CLOSING - OPENING) * offset / seconds


def arrival_offsets(mean_per_s: float, seconds: float) -> list[float]:
    """Seconds into the day at which citizens arrive: the k-th where the day's
    cumulative arrivals reach k + 1/2, so the count and shape are exact and the
    schedule is the same in every run."""
    steps = 20_000
    dt = seconds / steps
    scale = mean_per_s / shape_mean()
    out: list[float] = []
    total = 0.0
    for n in range(steps):
        total += scale * day_shape(hall_hour((n + 0.5) * dt, seconds)) * dt
        while total >= len(out) + 0.5:
            out.append((n + 1) * dt)
    return out


@dataclass(slots=True)
class Desk:
    """One area of one hall: its kiosks, services, idle windows and waiting citizens."""

    hall: str
    kiosks: list[str]
    services: list[str]
    idle: deque[WindowPlan]
    waiting: int = 0


@dataclass(slots=True)
class HallRun:
    plan: Plan
    port: int
    desks: dict[str, Desk]
    showing: dict[str, frozenset[str]]
    busyness: float
    url: str = ""
    leader: str = ""


def hall_run(plan: Plan, port: int, busyness: float) -> HallRun:
    desks = {a: Desk(plan.hall_id, [d.id for d in plan.by_kind(DeviceKind.KIOSK) if d.area == a],
                     plan.services[a], deque(w for w in plan.windows if w.area == a))
             for a in plan.areas}
    return HallRun(plan, port, desks, showing(plan), busyness)


@dataclass(frozen=True, slots=True)
class Citizen:
    offset: float
    hall: HallRun
    desk: Desk
    kiosk: str
    service: str


def citizens(halls: Sequence[HallRun], offsets: Sequence[float],
             rng: random.Random) -> list[Citizen]:
    weights = list(itertools.accumulate(h.busyness for h in halls))
    out = []
    for offset in offsets:
        hall = rng.choices(halls, cum_weights=weights)[0]
        desk = rng.choice(list(hall.desks.values()))
        out.append(Citizen(offset, hall, desk, rng.choice(desk.kiosks), rng.choice(desk.services)))
    return out


@dataclass(slots=True)
class DayResult:
    load: LoadResult = field(default_factory=LoadResult)
    start_ms: list[float] = field(default_factory=list)
    ops: list[tuple[float, str]] = field(default_factory=list)
    """(reply arrived, operation) of every successful operation."""
    dated: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: {"take_reply": [], "call_screen": []})
    """(due, ms) of each kiosk reply and each call's screen, for latency by hall hour."""
    acks: dict[tuple[str, str, str], float] = field(default_factory=dict)
    """(hall, event type, ticket) -> when the operation's reply arrived, on streamed halls."""
    began: float = float("nan")
    seconds: float = 0.0
    arrivals: int = 0
    peak_waiting: int = 0
    peak_area_waiting: int = 0
    drained: bool = True
    drain_s: float = 0.0

    def sustained(self, lo: float = 0.0, hi: float | None = None) -> float:
        hi = self.seconds if hi is None else hi
        done = sum(1 for at, _ in self.ops if lo <= at - self.began <= hi)
        return done / max(1e-9, hi - lo)

    def hours(self) -> list[tuple[float, float]]:
        """The day's eight hall hours as (from, to) seconds into it."""
        step = self.seconds / (CLOSING - OPENING)
        return [(h * step, (h + 1) * step) for h in range(round(CLOSING - OPENING))]

    def p99_by_hour(self, key: str) -> list[float | None]:
        return [r2(p50_p99([ms for due, ms in self.dated[key]
                            if lo <= due - self.began < hi])[1]) for lo, hi in self.hours()]


class Day:
    """Citizens on the schedule, clerks who call whenever their area has someone waiting."""

    def __init__(self, fleet: Fleet, halls: Sequence[HallRun], streamed: set[str],
                 settings: Settings, rng: random.Random, record: DayResult,
                 pace: float = 1.0) -> None:
        self.pace = pace
        """Scales the citizens' walk and service times; 0 for the warm-up."""
        self.fleet = fleet
        self.halls = halls
        self.streamed = streamed
        self.settings = settings
        self.rng = rng
        self.record = record
        self.tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _outcome(self, op: str, sent: float, due: float, at: float,
                 reply: dict[str, Any] | None) -> bool:
        rec = self.record.load
        rec.send_lag_ms.append((sent - due) * 1000)
        if reply is None:
            rec.timeouts[op] += 1
            return False
        if not reply["ok"]:
            rec.refusals[f"{op} {reply['error']['code']}"] += 1
            return False
        self.record.ops.append((at, op))
        return True

    def _ack(self, hall: str, op: str, ticket: str, at: float) -> None:
        if hall in self.streamed:
            self.record.acks[(hall, EVENT_OF[op], ticket)] = at

    async def arrive(self, citizen: Citizen, due: float) -> None:
        rec = self.record.load
        rec.takes += 1
        sent, at, reply = await self.fleet.request(
            citizen.kiosk, {"type": "kiosk.take_ticket", "service": citizen.service})
        if not self._outcome("take", sent, due, at, reply):
            return
        assert reply is not None
        rec.take_ms.append((at - due) * 1000)
        self.record.dated["take_reply"].append((due, (at - due) * 1000))
        self._ack(citizen.hall.plan.hall_id, "take", reply["result"]["ticket"]["id"], at)
        desk = citizen.desk
        desk.waiting += 1
        self.record.peak_area_waiting = max(self.record.peak_area_waiting, desk.waiting)
        self.record.peak_waiting = max(self.record.peak_waiting,
                                       sum(d.waiting for h in self.halls
                                           for d in h.desks.values()))
        while desk.waiting and desk.idle:
            desk.waiting -= 1
            self._spawn(self.serve(citizen.hall, desk, desk.idle.popleft()))

    async def serve(self, hall: HallRun, desk: Desk, window: WindowPlan) -> None:
        """Call, start, finish, and on while the area has someone waiting."""
        try:
            while await self._citizen(hall, window) and desk.waiting:
                desk.waiting -= 1
        finally:
            desk.idle.append(window)

    async def _citizen(self, hall: HallRun, window: WindowPlan) -> bool:
        rec = self.record.load
        hub = self.fleet.hub
        terminal = f"call-{window.id}"
        previous = hub.watches.get(window.id)
        if previous is not None:
            previous.complete.set()  # recorded with what it has seen: see _shown
        due = time.perf_counter()
        watch = CallWatch(window.id, f'"window_name":"{window.name}"'.encode(), window.name,
                          due, hall.showing[window.id])
        hub.watches[window.id] = watch
        rec.calls += 1
        sent, at, reply = await self.fleet.request(terminal, {"type": "terminal.call_next"})
        if not self._outcome("call", sent, due, at, reply):
            hub.watches.pop(window.id, None)
            return False
        assert reply is not None
        watch.replied = True
        watch.check()
        called = reply["result"]["window"]
        ticket = called["ticket_id"]
        self._ack(hall.plan.hall_id, "call", ticket, at)
        self._spawn(self._shown(watch, at, called["number"]))
        await asyncio.sleep(self.pace * self.rng.uniform(0.2, 0.8))
        for op, pause in (("start", self._service_s()), ("finish", 0.0)):
            due = time.perf_counter()
            sent, at, reply = await self.fleet.request(terminal, {"type": f"terminal.{op}"})
            if self._outcome(op, sent, due, at, reply):
                (self.record.start_ms if op == "start" else rec.finish_ms).append(
                    (at - sent) * 1000)
                self._ack(hall.plan.hall_id, op, ticket, at)
            await asyncio.sleep(pause)
        return True

    async def _shown(self, watch: CallWatch, at: float, number: str) -> None:
        """The call's screen and boards, while the citizen walks up and is served: the
        clerk waits for neither. A board that has not shown the call before the window's
        next call never showed it (it draws the latest state), so that one counts as a
        timeout too."""
        hub = self.fleet.hub
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(watch.complete.wait(),
                                   max(0.1, REPLY_TIMEOUT_S - (time.perf_counter() - watch.due)))
        if hub.watches.get(watch.window) is watch:
            del hub.watches[watch.window]
        record_call(self.record.load, watch, at, number)
        if watch.screen_at is not None:
            self.record.dated["call_screen"].append(
                (watch.due, (watch.screen_at - watch.due) * 1000))

    def _service_s(self) -> float:
        mean = self.settings.service_mean_s
        return self.pace * min(4 * mean, self.rng.expovariate(1 / mean))

    async def probe(self, seq: int) -> None:
        self.fleet.hub.probe.sent[seq] = time.perf_counter()
        await self.fleet.probe_a.publish("bench/oneway", str(seq).encode(), qos=1)

    async def run(self, schedule: Sequence[Citizen], seconds: float, probe: bool) -> None:
        rec = self.record
        rec.arrivals = len(schedule)
        rec.seconds = seconds
        start = time.perf_counter() + 0.05
        rec.began = start
        self.fleet.hub.probe.samples = []
        schedules = [on_schedule((start + c.offset for c in schedule),
                                 lambda i, due: self.arrive(schedule[i], due), self.tasks)]
        if probe:
            count = round(PROBE_RATE * seconds)
            schedules.append(on_schedule(
                (start + (i + 0.5) / PROBE_RATE for i in range(count)),
                lambda i, _: self.probe(i), self.tasks))
        await asyncio.gather(*schedules)
        ended = time.perf_counter()
        deadline = ended + DRAIN_S
        while self.tasks and time.perf_counter() < deadline:
            await asyncio.wait(set(self.tasks), timeout=max(0.01, deadline - time.perf_counter()))
        rec.drain_s = time.perf_counter() - ended
        rec.drained = not self.tasks
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        rec.load.seconds = seconds
        rec.load.probe_ms = list(self.fleet.hub.probe.samples)
        self.fleet.hub.probe.sent.clear()


# ---------------------------------------------------------------- memory and CPU


def machine_cores(before: tuple[int, int], after: tuple[int, int]) -> float:
    busy = after[0] - before[0]
    total = after[1] - before[1]
    return busy / total * (os.cpu_count() or 1) if total > 0 else float("nan")



def rss_bytes(pid: int) -> int:
    """Resident set of one process (Linux /proc); 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class MemoryWatch:
    """Peak RSS per process and of their sum, over the run and over the day."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self.peak: dict[int, int] = dict.fromkeys(self.pids, 0)
        self.peak_sum = 0
        self.day_peak_sum = 0
        self.in_day = False
        self.last_sum = 0

    def sample(self) -> None:
        sizes = {pid: rss_bytes(pid) for pid in self.pids}
        for pid, size in sizes.items():
            self.peak[pid] = max(self.peak[pid], size)
        self.last_sum = sum(sizes.values())
        self.peak_sum = max(self.peak_sum, self.last_sum)
        if self.in_day:
            self.day_peak_sum = max(self.day_peak_sum, self.last_sum)

    async def run(self, every: float = 0.5) -> None:
        while True:
            self.sample()
            await asyncio.sleep(every)


# ---------------------------------------------------------------- the city


def hall_ports(count: int, rng: random.Random) -> list[int]:
    """Free ports below Linux's ephemeral range (32768-60999): the halls bind theirs only
    once they are led, tens of seconds later, and a port from the ephemeral range may by
    then be some outgoing connection's own (free_port's are from it)."""
    ports: list[int] = []
    port = rng.randrange(20_000, 30_000 - 2 * count)
    while len(ports) < count:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
                ports.append(port)
            except OSError:
                pass
        port += 1
    return ports


def write_city(scratch: Path, settings: Settings, rng: random.Random,
               backend_token: str) -> tuple[Path, list[HallRun]]:
    """N hall files and the city file naming them; halls loaded back by the real loader."""
    folder = scratch / "halls"
    folder.mkdir()
    manager = ("bench-manager", secrets.token_urlsafe(16))
    ports = hall_ports(settings.halls, rng)
    tokens = (f'\n[[auth.tokens]]\nname = "bench-backend"\nrole = "backend"\n'
              f"token_sha256 = {q(token_sha256(backend_token))}\n")
    halls: list[HallRun] = []
    for k, port in enumerate(ports):
        hall_id = f"bench-city-{k + 1:03d}"
        plan = make_plan(settings.windows, settings.devices, hall_id=hall_id,
                         areas_count=settings.areas, prefix=f"h{k + 1:03d}-", manager=manager)
        write_config(plan, folder / f"{hall_id}.toml",
                     f'\n[http]\nhost = "127.0.0.1"\nport = {port}\n' + tokens)
        halls.append(hall_run(plan, port, rng.lognormvariate(0.0, 0.35)))
    city = scratch / "city.toml"
    city.write_text(
        '[city]\nname = "压测城市"\nhalls = ["halls/*.toml"]\n\n'
        f'[http]\nhost = "127.0.0.1"\nport = {free_port()}\nadvertise = "http://127.0.0.1"\n\n'
        "[leadership]\ninterval_seconds = 1.0\n", encoding="utf-8")
    return city, halls


def start_city(city: Path, db_url: str, mqtt_url: str, scratch: Path,
               count: int) -> list[ServerProcess]:
    key = base64.b64encode(os.urandom(32)).decode()
    return [start_server(city, db_url, scratch, env={"HALL_MQTT_URL": mqtt_url,
                                                      "HALL_DATA_KEY": key},
                         command=("city", "--name", f"city-{n + 1}"),
                         log_name=f"city-{n + 1}.log")
            for n in range(count)]


async def wait_led(http: aiohttp.ClientSession, processes: Sequence[ServerProcess],
                   halls: Sequence[HallRun], limit_s: float) -> tuple[float, float]:
    """(seconds until every hall had a leader, until they were spread over the
    processes); fills each hall's url and leader."""
    t0 = time.perf_counter()
    led_s = float("nan")
    share = math.ceil(len(halls) / len(processes))
    by_id = {h.plan.hall_id: h for h in halls}
    last: list[dict[str, Any]] = []
    while time.perf_counter() - t0 < limit_s:
        for process in processes:
            if process.process.poll() is not None:
                raise RuntimeError(f"a city process exited ({process.process.returncode}):\n"
                                   + process.log_text()[-3000:])
        with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
            async with http.get(processes[0].base + "/city/halls") as response:
                if response.status == 200:
                    last = (await response.json())["halls"]
        leaders = Counter(h["leader"] for h in last if h["leader"] is not None)
        if last and sum(leaders.values()) == len(halls):
            if math.isnan(led_s):
                led_s = time.perf_counter() - t0
            if len(leaders) == min(len(processes), len(halls)) and max(leaders.values()) <= share:
                for row in last:
                    by_id[row["hall_id"]].url = row["url"]
                    by_id[row["hall_id"]].leader = row["leader"]
                return led_s, time.perf_counter() - t0
        await asyncio.sleep(0.25)
    raise RuntimeError(f"halls not all led and spread after {limit_s:.0f} s: "
                       f"{dict(Counter(h['leader'] for h in last))}")


async def bring_city_online(fleet: Fleet, halls: Sequence[HallRun],
                            http: aiohttp.ClientSession) -> int:
    """Every device's birth and state, BIRTH_HALLS halls at a time (each hall's own
    connection takes its devices' births at once), then each hall's count."""
    online = 0
    for i in range(0, len(halls), BIRTH_HALLS):
        group = halls[i:i + BIRTH_HALLS]
        await asyncio.gather(*(announce(fleet, d) for h in group for d in h.plan.devices))
        counts = await asyncio.gather(*(wait_online(http, h.url, len(h.plan.devices), 30.0)
                                        for h in group))
        online += sum(n for n, _ in counts)
    return online


async def commit_totals(http: aiohttp.ClientSession, halls: Sequence[HallRun]) -> dict[str, float]:
    """The halls' group-commit histograms, summed (each hall has its own registry)."""
    out: Counter[str] = Counter()
    for snapshot in await asyncio.gather(*(metrics_snapshot(http, h.url) for h in halls)):
        out.update(snapshot)
    return dict(out)


@dataclass(slots=True)
class Stream:
    hall: str
    ws: aiohttp.ClientWebSocketResponse
    received: list[tuple[float, str]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def listen(self) -> None:
        clock = time.perf_counter
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.received.append((clock(), message.data))
            else:
                break


async def open_streams(http: aiohttp.ClientSession, halls: Sequence[HallRun],
                       token: str) -> list[Stream]:
    streams = []
    for hall in halls:
        ws = await http.ws_connect(f"{hall.url}/api/v1/events?type=ticket.*", compress=0,
                                   headers={"Authorization": f"Bearer {token}"})
        stream = Stream(hall.plan.hall_id, ws)
        stream.task = asyncio.create_task(stream.listen())
        streams.append(stream)
    await asyncio.sleep(0.3)  # registered just after the handshake
    return streams


def stream_lag(streams: Sequence[Stream], acks: dict[tuple[str, str, str], float]
               ) -> tuple[list[float], int, int]:
    """(lag of each acknowledged operation's event in ms, acknowledged operations
    whose event never came, events received)."""
    lag: list[float] = []
    seen: set[tuple[str, str, str]] = set()
    events = 0
    for stream in streams:
        for arrived, raw in stream.received:
            event = json.loads(raw)
            events += 1
            key = (stream.hall, event.get("type", ""), event.get("ticket_id", ""))
            ack = acks.get(key)
            if ack is not None and key not in seen:
                seen.add(key)
                lag.append((arrived - ack) * 1000)
    return lag, len(acks) - len(seen), events


# ---------------------------------------------------------------- run


@dataclass(slots=True)
class Figures:
    commit: CommitResult | None = None
    raw_ms: list[float] = field(default_factory=list)
    echo_ms: list[float] = field(default_factory=list)
    day: DayResult = field(default_factory=DayResult)
    usage: Usage | None = None
    machine: float = float("nan")
    """Busy cores of the whole machine over the day."""
    commits: CommitStats | None = None
    memory: MemoryWatch | None = None
    lag_ms: list[float] = field(default_factory=list)
    stream_missing: int = 0
    stream_events: int = 0
    streams: int = 0
    config_s: float = float("nan")
    city_up_s: float = float("nan")
    led_s: float = float("nan")
    balanced_s: float = float("nan")
    ready_s: float = float("nan")
    opened_s: float = float("nan")
    online: int = 0
    online_s: float = float("nan")
    connections: int = 0
    leaders: dict[str, int] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)
    received_mb: float = 0.0
    handler_errors: list[str] = field(default_factory=list)
    exits: list[int | None] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    broker_drops: list[str] = field(default_factory=list)
    process_names: list[str] = field(default_factory=list)


async def run(settings: Settings, city: Path, halls: list[HallRun], db_url: str, scratch: Path,
              backend_token: str, figures: Figures, processes: list[ServerProcess],
              broker_pids: list[int], say: Say) -> None:
    figures.commit = await bench_commit(db_url, settings.commits)
    c50, c99 = p50_p99(figures.commit.samples_ms)
    say(f"raw asyncpg commit (INSERT 1 row + COMMIT, n={len(figures.commit.samples_ms):,}): "
        f"p50 {c50:.3f} ms, p99 {c99:.3f} ms")
    broker = await start_broker(scratch / "mqtt")
    if broker.process is not None:
        broker_pids.append(broker.process.pid)
    broker_pid = broker.process.pid if broker.process is not None else None
    rng = random.Random(settings.seed + 1)
    try:
        t0 = time.perf_counter()
        processes += start_city(city, db_url, broker.url, scratch, settings.processes)
        figures.process_names = [f"city-{n + 1}" for n in range(len(processes))]
        memory = MemoryWatch([p.process.pid for p in processes])
        figures.memory = memory
        sampler = asyncio.create_task(memory.run())
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=200)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http, \
                contextlib.AsyncExitStack() as stack:
            for process in processes:
                await wait_ready(http, process, 60.0, path="/healthz")
            figures.city_up_s = time.perf_counter() - t0
            figures.led_s, figures.balanced_s = await wait_led(
                http, processes, halls, 60.0 + 1.5 * len(halls))
            figures.led_s += figures.city_up_s
            figures.balanced_s += figures.city_up_s
            by_name = dict(zip(figures.process_names, processes, strict=True))
            await asyncio.gather(*(wait_ready(http, replace(by_name[h.leader], base=h.url), 60.0)
                                   for h in halls))
            figures.ready_s = time.perf_counter() - t0
            figures.leaders = dict(sorted(Counter(h.leader for h in halls).items()))
            say(f"{len(processes)} city process(es) (pids "
                f"{', '.join(str(p.process.pid) for p in processes)}) up in "
                f"{figures.city_up_s:.1f} s; every hall led after {figures.led_s:.1f} s, spread "
                f"{figures.leaders} after {figures.balanced_s:.1f} s, every hall ready after "
                f"{figures.ready_s:.1f} s; broker {broker.kind} at {broker.url}")

            t1 = time.perf_counter()
            gate = asyncio.Semaphore(8)

            async def open_hall(hall: HallRun) -> None:
                async with gate:
                    await open_windows(http, hall.url, hall.plan)

            await asyncio.gather(*(open_hall(h) for h in halls))
            figures.opened_s = time.perf_counter() - t1
            t1 = time.perf_counter()
            plans = [h.plan for h in halls]
            fleet = await open_fleet(stack, broker, plans, settings.devices_per_connection)
            figures.connections = len(fleet.connections)
            every = [d for p in plans for d in p.devices]
            subscribed = await subscribe_all(fleet, every)
            figures.online = await bring_city_online(fleet, halls, http)
            figures.online_s = time.perf_counter() - t1
            say(f"{sum(len(p.windows) for p in plans):,} windows opened (REST, a manager per "
                f"hall) in {figures.opened_s:.1f} s; {len(every):,} devices on "
                f"{figures.connections} shared MQTT connections subscribed in {subscribed:.1f} s,"
                f" {figures.online:,} online after {figures.online_s:.1f} s")
            if figures.online < len(every):
                say(f"  WARNING: only {figures.online:,} of {len(every):,} devices online")

            figures.raw_ms = await raw_oneway(fleet, settings.raw_n)
            figures.echo_ms = await raw_echo(fleet, settings.raw_n, settings.echo_seconds)
            r50, r99 = p50_p99(figures.raw_ms)
            e50, e99 = p50_p99(figures.echo_ms)
            say(f"raw broker (QoS 1, idle): one-way p50 {r50:.3f} ms, p99 {r99:.3f} ms (n="
                f"{len(figures.raw_ms)}); echo A -> B -> A p50 {e50:.3f} ms, p99 {e99:.3f} ms "
                f"(n={len(figures.echo_ms)})")

            streamed = halls[:settings.stream_halls]
            streams = await open_streams(http, streamed, backend_token)
            figures.streams = len(streams)
            names = {h.plan.hall_id for h in streamed}
            # warm-up: one citizen per hall, every code path once, not recorded
            warm = [Citizen(0.02 * k, h, next(iter(h.desks.values())),
                            next(iter(h.desks.values())).kiosks[0],
                            next(iter(h.desks.values())).services[0])
                    for k, h in enumerate(halls)]
            await Day(fleet, halls, names, settings, rng, DayResult(), pace=0.0).run(
                warm, max(0.05, 0.02 * len(halls)), probe=False)
            for stream in streams:
                stream.received.clear()

            schedule = citizens(halls, arrival_offsets(settings.rate / OPS_PER_CITIZEN,
                                                       settings.seconds),
                                random.Random(settings.seed))
            say(f"the day: hall hours {OPENING:05.2f}-{CLOSING:05.2f} in {settings.seconds:g} s, "
                f"{len(schedule):,} citizens x {OPS_PER_CITIZEN} operations = mean "
                f"{settings.rate:g} ops/s (peak {settings.rate * 1.6 / shape_mean():.0f}, "
                f"lunch {settings.rate * 0.35 / shape_mean():.0f}); service mean "
                f"{settings.service_mean_s:.1f} s; event stream on {len(streams)} hall(s); "
                f"raw probe {PROBE_RATE:g}/s")
            fleet.hub.received.clear()
            fleet.hub.received_bytes = 0
            before = await commit_totals(http, halls)
            meter = Meter([p.process.pid for p in processes], broker_pid)
            machine0 = machine_jiffies()
            memory.in_day = True
            figures.day = DayResult()
            await Day(fleet, halls, names, settings, rng, figures.day).run(
                schedule, settings.seconds, probe=True)
            figures.usage = meter.read()
            figures.machine = machine_cores(machine0, machine_jiffies())
            memory.in_day = False
            after = await commit_totals(http, halls)
            figures.commits = commit_delta(before, after)
            figures.received = Counter(fleet.hub.received)
            figures.received_mb = fleet.hub.received_bytes / 1e6
            figures.handler_errors = list(fleet.hub.handler_errors)
            await asyncio.sleep(STREAM_SETTLE_S)
            for stream in streams:
                await stream.ws.close()
                if stream.task is not None:
                    stream.task.cancel()
            await asyncio.gather(*(s.task for s in streams if s.task is not None),
                                 return_exceptions=True)
            figures.lag_ms, figures.stream_missing, figures.stream_events = stream_lag(
                streams, figures.day.acks)
        sampler.cancel()
        memory.sample()
    finally:
        for process in processes:
            figures.exits.append(process.stop())
        figures.broker_drops = await stop_broker(broker, broker_pids)


# ---------------------------------------------------------------- report


def other_cores(figures: Figures) -> float:
    """What the machine was busy with besides this bench, its city, broker and database:
    when large, another job shared the cores and the figures are noisier."""
    usage = figures.usage
    if usage is None or math.isnan(figures.machine):
        return float("nan")
    return max(0.0, figures.machine - usage.server - usage.broker - usage.client
               - usage.postgres)


def ratios(samples: Sequence[float], yardstick: float) -> float | None:
    p99 = p50_p99(samples)[1]
    if math.isnan(p99) or yardstick <= 0:
        return None
    return round(p99 / yardstick, 2)


def verdicts(settings: Settings, figures: Figures) -> dict[str, bool]:
    day = figures.day
    offered = settings.rate
    memory = figures.memory
    screen99 = p50_p99(day.load.screen_ms)[1]
    return {
        "scale": (settings.halls >= TARGET_HALLS
                  and settings.halls * settings.windows >= TARGET_WINDOWS
                  and figures.online >= TARGET_DEVICES),
        "rate": offered >= TARGET_RATE and day.sustained() >= RATE_FLOOR * offered,
        "call_screen_p99": not math.isnan(screen99) and screen99 < SCREEN_P99_LIMIT_MS,
        "memory": memory is not None and 0 < memory.peak_sum < MEMORY_LIMIT_BYTES,
    }


def report(settings: Settings, figures: Figures, say: Say) -> dict[str, Any]:
    """The human summary; returns the JSON object's figures."""
    assert figures.commit is not None
    day, rec = figures.day, figures.day.load
    c50, c99 = p50_p99(figures.commit.samples_ms)
    r50, r99 = p50_p99(figures.raw_ms)
    e50, e99 = p50_p99(figures.echo_ms)
    trip = e99 + c50
    budget = 3 * r99 + c50
    ops = Counter(op for at, op in day.ops if 0 <= at - day.began <= day.seconds)
    sustained = day.sustained()
    hours = [day.sustained(lo, hi) for lo, hi in day.hours()]
    say(f"day: {day.arrivals:,} citizens in {day.seconds:g} s; operations within it "
        f"{dict(ops)} -> sustained {sustained:.1f} ops/s of {settings.rate:g} offered; drained "
        f"{'in' if day.drained else 'NOT in'} {day.drain_s:.1f} s; peak waiting "
        f"{day.peak_waiting} in the city, {day.peak_area_waiting} in one area")
    say("  per hall hour: ops/s " + ", ".join(
        f"{OPENING + h:02.0f}h {v:.0f}" for h, v in enumerate(hours)))
    by_hour = {key: day.p99_by_hour(key) for key in day.dated}
    for key, values in by_hour.items():
        say(f"    {key} p99 ms " + ", ".join(
            f"{OPENING + h:02.0f}h {'-' if v is None else f'{v:.0f}'}"
            for h, v in enumerate(values)))
    rows = (("kiosk take_ticket -> reply", "take_reply", rec.take_ms),
            ("call_next -> reply", "call_reply", rec.call_reply_ms),
            ("call -> window screen", "call_screen", rec.screen_ms),
            ("call -> hall board (each)", "call_board", rec.board_ms),
            ("call -> all its boards", "call_all_boards", rec.all_boards_ms),
            ("start -> reply", "start_reply", day.start_ms),
            ("finish -> reply", "finish_reply", rec.finish_ms),
            ("event stream lag", "stream_lag", figures.lag_ms),
            ("raw one-way under load", "raw_under_load", rec.probe_ms))
    out: dict[str, Any] = {}
    for label, key, samples in rows:
        p50, p99 = p50_p99(samples)
        say(f"  {label:<27} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms   (n={len(samples):,})")
        out |= {f"{key}_p50_ms": r2(p50), f"{key}_p99_ms": r2(p99), f"{key}_n": len(samples)}
    say(f"  event stream: {figures.stream_events:,} events on {figures.streams} hall(s); "
        f"{figures.stream_missing} acknowledged operations never seen there")
    lag50, lag99 = p50_p99(rec.send_lag_ms)
    say(f"  client send lag (published - due): p50 {lag50:.2f} ms, p99 {lag99:.2f} ms")
    problems = dict(rec.refusals) | {f"timeout {k}": v for k, v in rec.timeouts.items() if v}
    if problems or rec.number_mismatch:
        say(f"  refusals/timeouts: {problems}; number mismatches {rec.number_mismatch}")
    say(f"  received during the day: {dict(figures.received)} ({figures.received_mb:.1f} MB)")
    if figures.commits is not None:
        say("  " + figures.commits.line())
    usage, memory = figures.usage, figures.memory
    if usage is not None:
        per = ", ".join(f"{n} {100 * c:.0f}%" for n, c in
                        zip(figures.process_names, usage.servers, strict=True))
        say(f"  CPU (% of one core): city {per}; mosquitto {100 * usage.broker:.0f}%, bench "
            f"client {100 * usage.client:.0f}%, postgres {100 * usage.postgres:.0f}%, anything "
            f"else on the machine {100 * other_cores(figures):.0f}% (of "
            f"{100 * (os.cpu_count() or 1)}%: {os.cpu_count()} cores)")
    if memory is not None:
        per = ", ".join(f"{n} {memory.peak[p] / 2**20:.0f} MiB"
                        for n, p in zip(figures.process_names, memory.pids, strict=True))
        say(f"  memory (RSS peak): {per}; sum peak {memory.peak_sum / 2**20:.0f} MiB over the "
            f"run, {memory.day_peak_sum / 2**20:.0f} MiB during the day")
    say(f"yardsticks: raw commit p50 {c50:.3f} ms; echo p99 + commit p50 = {trip:.2f} ms (one "
        f"request/reply crossing + one commit); 3 x one-way p99 + commit p50 = {budget:.2f} ms")
    for label, key, samples in rows[:3] + rows[7:8]:
        say(f"  {label:<27} p99 = {ratios(samples, trip)} x (echo + commit), "
            f"{ratios(samples, budget)} x (3 one-way + commit)")
        out[f"{key}_ratio_echo_commit"] = ratios(samples, trip)
        out[f"{key}_ratio_budget"] = ratios(samples, budget)
    met = verdicts(settings, figures)
    texts = {
        "scale": f"{TARGET_HALLS} halls / {TARGET_WINDOWS:,} windows / {TARGET_DEVICES:,} "
                 f"devices online: {settings.halls} / {settings.halls * settings.windows:,} / "
                 f"{figures.online:,}",
        "rate": f"{TARGET_RATE:g} ops/s sustained (>= {RATE_FLOOR:.0%} of the offered mean): "
                f"{sustained:.1f} of {settings.rate:g}",
        "call_screen_p99": f"call -> screen p99 < {SCREEN_P99_LIMIT_MS:g} ms: "
                           f"{p50_p99(rec.screen_ms)[1]:.2f} ms",
        "memory": f"memory < 1 GB: peak RSS sum "
                  f"{(memory.peak_sum if memory else 0) / 1e6:.0f} MB",
    }
    say("targets (2-core machine):")
    if settings.halls < TARGET_HALLS or settings.rate < TARGET_RATE:
        say("  (this run is smaller than the targets: their scale and rate cannot be met)")
    for key, text in texts.items():
        say(f"  {'MET   ' if met[key] else 'NOT MET'} {text}")
    out.update({f"target_{k}_met": v for k, v in met.items()})
    out["targets_met"] = all(met.values())
    out |= {"commit_p50_ms": r2(c50), "commit_p99_ms": r2(c99), "raw_p50_ms": r2(r50),
            "raw_p99_ms": r2(r99), "raw_echo_p50_ms": r2(e50), "raw_echo_p99_ms": r2(e99),
            "echo_commit_ms": r2(trip), "budget_ms": r2(budget),
            "ops_per_s": round(sustained, 1), "ops_per_s_by_hour": [round(h, 1) for h in hours],
            **{f"{key}_p99_ms_by_hour": values for key, values in by_hour.items()},
            "ops": dict(ops)}
    return out


def summary(quick: bool, settings: Settings, figures: Figures, measured: dict[str, Any],
            elapsed: float) -> dict[str, Any]:
    day, rec, usage, memory = figures.day, figures.day.load, figures.usage, figures.memory
    return {
        "bench": "city",
        "quick": quick,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "processes": settings.processes,
        "halls": settings.halls,
        "windows": settings.halls * settings.windows,
        "devices": settings.halls * settings.devices,
        "devices_online": figures.online,
        "mqtt_connections": figures.connections,
        "offered_ops_per_s": settings.rate,
        "day_seconds": settings.seconds,
        "citizens": day.arrivals,
        "service_mean_s": settings.service_mean_s,
        **measured,
        "stream_halls": figures.streams,
        "stream_events": figures.stream_events,
        "stream_missing": figures.stream_missing,
        "refusals": dict(rec.refusals),
        "timeouts": {k: v for k, v in rec.timeouts.items() if v},
        "number_mismatch": rec.number_mismatch,
        "send_lag_p99_ms": r2(p50_p99(rec.send_lag_ms)[1]),
        "drained": day.drained,
        "drain_s": round(day.drain_s, 1),
        "peak_waiting": day.peak_waiting,
        "peak_area_waiting": day.peak_area_waiting,
        "events_per_commit": None if figures.commits is None else r2(
            figures.commits.events_per_commit),
        "ms_per_commit": None if figures.commits is None else r2(figures.commits.ms_per_commit),
        "commits": None if figures.commits is None else figures.commits.commits,
        "server_cpu_pct": None if usage is None else [round(100 * c, 1) for c in usage.servers],
        "server_cpu_pct_sum": None if usage is None else round(100 * usage.server, 1),
        "broker_cpu_pct": None if usage is None else round(100 * usage.broker, 1),
        "client_cpu_pct": None if usage is None else round(100 * usage.client, 1),
        "postgres_cpu_pct": None if usage is None else round(100 * usage.postgres, 1),
        "other_cpu_pct": r2(100 * other_cores(figures)),
        "server_rss_peak_mb": None if memory is None else [
            round(memory.peak[pid] / 1e6, 1) for pid in memory.pids],
        "server_rss_peak_sum_mb": None if memory is None else round(memory.peak_sum / 1e6, 1),
        "server_rss_day_peak_sum_mb": None if memory is None else round(
            memory.day_peak_sum / 1e6, 1),
        "received": dict(figures.received),
        "received_mb": round(figures.received_mb, 1),
        "leaders": figures.leaders,
        "city_up_s": r2(figures.city_up_s),
        "all_led_s": r2(figures.led_s),
        "balanced_s": r2(figures.balanced_s),
        "halls_ready_s": r2(figures.ready_s),
        "windows_opened_s": r2(figures.opened_s),
        "devices_online_s": r2(figures.online_s),
        "client_handler_errors": len(figures.handler_errors),
        "server_log_problems": len(figures.problems),
        "broker_drop_lines": len(figures.broker_drops),
        "server_exit_codes": figures.exits,
        "wall_s": round(elapsed, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK.halls} halls, {QUICK.seconds:g} s of day at "
                             f"{QUICK.rate:g} ops/s: under a minute")
    parser.add_argument("--halls", type=int, help=f"halls (default {FULL.halls})")
    parser.add_argument("--processes", type=int, default=1, help="city processes (default 1)")
    parser.add_argument("--rate", type=float, help=f"mean ops/s over the day (default "
                                                   f"{FULL.rate:g}, quick {QUICK.rate:g})")
    parser.add_argument("--seconds", type=float, help=f"length of the day (default "
                                                      f"{FULL.seconds:g}, quick {QUICK.seconds:g})")
    parser.add_argument("--stream-halls", type=int, help="halls with an event-stream client")
    parser.add_argument("--keep", action="store_true",
                        help="keep the scratch folder (hall and city files, process logs)")
    args = parser.parse_args(argv)
    settings = replace(QUICK if args.quick else FULL, processes=args.processes)
    for name in ("halls", "rate", "seconds", "stream_halls"):
        if getattr(args, name) is not None:
            settings = replace(settings, **{name: getattr(args, name)})
    if not (1 <= settings.halls <= 500 and 1 <= settings.processes <= 8
            and 0 < settings.rate <= 2000 and 1 <= settings.seconds <= 600):
        parser.error("out of bounds: 1-500 halls, 1-8 processes, rate (0, 2000], 1-600 s")
    settings = replace(settings, stream_halls=max(0, min(settings.stream_halls, settings.halls)))
    wall = time.perf_counter()

    def say(line: str) -> None:
        print(line, flush=True)

    say(f"city bench ({'quick' if args.quick else 'full'}), Python {platform.python_version()}, "
        f"{os.cpu_count()} cores shared by the bench client, {settings.processes} city "
        "process(es), mosquitto and PostgreSQL; loopback only")
    scratch = Path(tempfile.mkdtemp(prefix="smarthall-bench-city-"))
    name = f"smarthall_bench_{uuid.uuid4().hex[:10]}"
    figures = Figures()
    processes: list[ServerProcess] = []
    broker_pids: list[int] = []
    admin_url: str | None = None
    embedded: Database | None = None
    created = False
    interrupted = False
    failed = False
    try:
        admin_url, origin, embedded = find_server(scratch)
        t0 = time.perf_counter()
        backend_token = secrets.token_urlsafe(24)
        city, halls = write_city(scratch, settings, random.Random(settings.seed + 2),
                                 backend_token)
        figures.config_s = time.perf_counter() - t0
        say(f"config: {settings.halls} hall files ({settings.windows} windows, "
            f"{settings.devices} devices, {settings.areas} areas each) and a city file, written "
            f"and loaded in {figures.config_s:.1f} s")
        db_url = asyncio.run(create_database(admin_url, name))
        created = True
        say(f"database: {origin}, throwaway database {name} (migrated)")
        asyncio.run(run(settings, city, halls, db_url, scratch, backend_token, figures,
                        processes, broker_pids, say))
    except KeyboardInterrupt:
        interrupted = True
    except (RuntimeError, OSError, aiohttp.ClientError, asyncpg.PostgresError, TimeoutError):
        failed = True  # the figures are lost, never the reason: the trace and the logs' lines
        traceback.print_exc()
    finally:
        for process in processes:  # already stopped unless the event loop was torn down
            process.stop()
        for pid in broker_pids:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGTERM)
        if created and admin_url is not None:
            drop_throwaway_database(admin_url, name)
        if embedded is not None:
            embedded.close()
        figures.problems = [line for p in processes for line in server_problems(p)]
        if args.keep:
            say(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)

    if interrupted or failed:
        for line in figures.problems[:20]:
            say(f"  {line}")
        say(f"{'interrupted' if interrupted else 'FAILED'}: city processes stopped, broker "
            f"stopped, database {name} dropped")
        return 130 if interrupted else 1
    measured = report(settings, figures, say)
    if figures.handler_errors:
        say(f"client handler errors: {figures.handler_errors}")
    say(f"city processes stopped (exit codes {figures.exits}); {len(figures.problems)} "
        "warning/error lines in their logs" + (":" if figures.problems else ""))
    for line in figures.problems[:10]:
        say(f"  {line}")
    say(f"mosquitto: {len(figures.broker_drops)} log lines about dropped messages")
    elapsed = time.perf_counter() - wall
    say(f"wall time {elapsed:.1f} s")
    print(json.dumps(summary(args.quick, settings, figures, measured, elapsed),
                     ensure_ascii=False, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
