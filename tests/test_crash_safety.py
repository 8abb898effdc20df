"""Crash safety: after ``kill -9`` at any moment and a restart, every
acknowledged ticket and transition is there, numbering goes on with no
duplicate, and the windows are back in their last state.

A real server subprocess serves concurrent kiosks and clerks and is killed
with SIGKILL at a seeded random moment, three times over on one database, so
each restart also recovers from the restarts before it. Only an answer that
arrived counts as acknowledged: a request cut off by the kill may or may not
have happened, and the checks allow exactly that and nothing more.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from hall.config import load_hall_config
from queueing.hours import ALWAYS

ROOT = Path(__file__).resolve().parent.parent
DEMO_CONFIG = ROOT / "config" / "demo-hall.toml"
FAULT_FIGURES = ROOT / "artifacts" / "faults.json"
"""What the fault tests measured (recovery times, acknowledged operations
checked), one entry per test, kept for the run's report."""
ALWAYS_OPEN = "00:00-23:59:59.999999"
"""The whole day, as ``queueing.hours.ALWAYS``: the server runs on the wall
clock, and a hall closed at night or at the weekend refuses every ticket."""
DATA_KEY = base64.b64encode(bytes(range(32))).decode("ascii")
"""Fixed, so that every restart opens what the one before it sealed."""
PASSWORD = "hall-demo-2026"
MANAGER = "liuyang"
CLERKS = {"w04": "zhangwei", "w05": "wangfang", "w09": "lina", "w10": MANAGER}
"""One account per window. Staff log in as themselves; a manager must name
the staff, so the manager logs himself in at w10 by his staff_id."""
SERVICES = ("biz-setup", "biz-change", "tax-register", "tax-declare")
"""Served by the windows above: prefix A at w04 and w05, prefix J at w09 and w10."""
FIRST_AFTER_RESTART = {"A": "biz-setup", "J": "tax-register"}
KIOSKS = 4
"""Ticket takers; each uses a clerk's session, as staff may take tickets too."""
KILL_SEEDS = (20260301, 7, 424242)
"""One kill per seed; each seed picks the moment and what the clients ask."""
KILL_WINDOW = (0.25, 0.8)
"""Seconds into the load between which the kill falls."""
MIN_ANSWERS = 20
"""Acknowledged answers a round must have had before the kill to count as load."""
RECOVERY_LIMIT = 20.0
NEXT_STEP = {"idle": "call-next", "calling": "start", "serving": "finish"}
CUT_OFF = (aiohttp.ClientError, TimeoutError)
"""What a client sees when the server dies under its request: no answer."""

JSON = dict[str, Any]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def always_open_config(target: Path) -> Path:
    """The demo hall with the hall open round the clock on every weekday, and
    every service and window inheriting those hours. tomllib cannot write, so
    the text is edited: every ``hours``/``weekdays`` line goes, and the hall's
    working hours are replaced."""
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(hours|weekdays) = \[.*\n", "", text)
    text, replaced = re.subn(
        r"(?m)^working_hours = \[.*\]$",
        f'working_hours = ["{ALWAYS_OPEN}"]\nweekdays = [1, 2, 3, 4, 5, 6, 7]',
        text,
    )
    assert replaced == 1, "the demo hall has no single working_hours line any more"
    target.write_text(text, encoding="utf-8")
    parsed = tomllib.loads(text)
    for table in (*parsed["services"], *parsed["windows"]):
        assert not {"hours", "weekdays"} & table.keys(), f"{table['id']} keeps its own hours"
    layout = load_hall_config(target).layout
    assert layout.working_hours == ALWAYS
    assert all(service.hours == ALWAYS for service in layout.services.values())
    return target


def record_figures(test: str, figures: JSON) -> None:
    """Print ``figures`` (seen with ``pytest -s``) and keep them in FAULT_FIGURES
    under ``test``, beside the other fault tests' figures."""
    print(f"\n{test}: {json.dumps(figures)}")
    kept = json.loads(FAULT_FIGURES.read_text(encoding="utf-8")) if FAULT_FIGURES.exists() else {}
    kept[test] = figures
    FAULT_FIGURES.parent.mkdir(exist_ok=True)
    FAULT_FIGURES.write_text(json.dumps(kept, indent=2) + "\n", encoding="utf-8")


def auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


class Server:
    """One server subprocess. Its output goes to a file, not a pipe, so that
    a pipe nobody reads can never block it."""

    def __init__(self, config: Path, port: int, db_url: str, log: Path) -> None:
        self.log = log
        env = {**os.environ, "HALL_DATABASE_URL": db_url, "HALL_DATA_KEY": DATA_KEY}
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "run_hall.py", "--config", str(config), "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """``kill -9``: no signal handler, no clean stop, no flush."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return f"--- {self.log.name} ---\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class Acknowledged:
    """What the clients were told, answer by answer: the promises a restarted
    hall must keep."""

    numbers: dict[str, str] = field(default_factory=dict)
    """Ticket id -> number, for every ticket whose issue was answered."""
    issue_seqs: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, str] = field(default_factory=dict)
    """Ticket id -> the status the last answer about it implied."""
    windows: dict[str, JSON] = field(default_factory=dict)
    """Window id -> its last answer."""
    transitions: list[tuple[str, int]] = field(default_factory=list)
    """(window, seq) of every answered window operation."""
    in_flight: dict[str, str] = field(default_factory=dict)
    """Window -> the operation the kill cut off: it may or may not have happened."""
    answers: int = 0
    unexpected: list[str] = field(default_factory=list)
    """Refusals no client should have had: the hall was open and staffed."""

    def issued(self, ticket: JSON) -> None:
        self.answers += 1
        self.numbers[ticket["id"]] = ticket["number"]
        self.issue_seqs[ticket["id"]] = ticket["seq"]
        self.statuses[ticket["id"]] = ticket["status"]

    def window_answered(self, window: str, step: str, answer: JSON) -> None:
        self.answers += 1
        held_before = self.windows[window]["ticket_id"]
        self.windows[window] = answer
        self.transitions.append((window, answer["seq"]))
        if step == "finish":
            self.statuses[held_before] = "finished"
        elif step in ("call-next", "start"):
            self.statuses[answer["ticket_id"]] = "called" if step == "call-next" else "serving"

    def refused(self, status: int, problem: Any, expected: tuple[str, ...] = ()) -> None:
        code = problem.get("code") if isinstance(problem, dict) else None
        if not (status == 409 and code in expected):
            self.unexpected.append(f"{status} {problem}")


async def post(
    session: aiohttp.ClientSession, url: str, token: str | None, body: JSON | None = None
) -> tuple[int, Any]:
    async with session.post(url, json=body, headers=auth(token)) as response:
        return response.status, await response.json(content_type=None)


async def get(session: aiohttp.ClientSession, url: str, token: str) -> tuple[int, Any]:
    async with session.get(url, headers=auth(token)) as response:
        return response.status, await response.json(content_type=None)


async def take_tickets(
    session: aiohttp.ClientSession, base: str, token: str, rng: random.Random, told: Acknowledged
) -> None:
    """A kiosk taking tickets as fast as it is answered, until the server dies."""
    while True:
        service = rng.choice(SERVICES)
        try:
            status, body = await post(
                session, f"{base}/api/v1/tickets", token, {"service": service}
            )
        except CUT_OFF:
            return
        if status == 201:
            told.issued(body)
        else:
            told.refused(status, body)


async def work_window(
    session: aiohttp.ClientSession,
    base: str,
    window: str,
    token: str,
    rng: random.Random,
    told: Acknowledged,
) -> None:
    """A clerk calling, starting and finishing one ticket after another, each
    step chosen from the window's last answer, until the server dies."""
    while True:
        step = NEXT_STEP[told.windows[window]["state"]]
        told.in_flight[window] = step
        try:
            status, body = await post(session, f"{base}/api/v1/windows/{window}/{step}", token)
        except CUT_OFF:
            return
        del told.in_flight[window]
        if status == 200:
            told.window_answered(window, step, body)
        else:
            told.refused(status, body, expected=("nothing_waiting",))
        await asyncio.sleep(rng.uniform(0, 0.01))


class Hall:
    """The hall under test: its configuration, database and port, and the
    server currently running it."""

    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.tmp_path = tmp_path
        self.db_url = db_url
        self.config = always_open_config(tmp_path / "always-open-hall.toml")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.servers: list[Server] = []

    @property
    def server(self) -> Server:
        return self.servers[-1]

    def start(self) -> Server:
        log = self.tmp_path / f"server-{len(self.servers) + 1}.log"
        self.servers.append(Server(self.config, self.port, self.db_url, log))
        return self.server

    def kill_all(self) -> None:
        for server in self.servers:
            server.kill()

    def logs(self) -> str:
        return "\n".join(server.tail() for server in self.servers[-2:])

    async def ready(self, session: aiohttp.ClientSession, timeout: float) -> float:
        """Poll /readyz; returns the monotonic time it first answered 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.server.process.returncode}")
            try:
                async with session.get(f"{self.base}/readyz") as response:
                    if response.status == 200:
                        return time.monotonic()
            except CUT_OFF:
                pass
            await asyncio.sleep(0.02)
        raise AssertionError(f"/readyz did not answer 200 within {timeout} s")


async def open_hall(
    session: aiohttp.ClientSession, base: str, told: Acknowledged
) -> dict[str, str]:
    """Sessions for the clerks and the manager, and every clerk at a window;
    returns the token that acts at each window (and the manager's, as "")."""
    tokens: dict[str, str] = {}
    for staff in dict.fromkeys(CLERKS.values()):
        status, body = await post(
            session, f"{base}/api/v1/auth/login", None, {"staff_id": staff, "password": PASSWORD}
        )
        assert status == 200, body
        tokens[staff] = body["token"]
    for window, staff in CLERKS.items():
        body_in = {"staff_id": staff} if staff == MANAGER else {}
        status, answer = await post(
            session, f"{base}/api/v1/windows/{window}/login", tokens[staff], body_in
        )
        assert status == 200, answer
        assert (answer["staff"], answer["state"]) == (staff, "idle")
        told.windows[window] = answer
        told.transitions.append((window, answer["seq"]))
    return {window: tokens[staff] for window, staff in CLERKS.items()} | {"": tokens[MANAGER]}


async def run_load_and_kill(
    hall: Hall, tokens: dict[str, str], seed: int, told: Acknowledged
) -> tuple[float, float]:
    """Kiosks and clerks at full speed; SIGKILL at a seeded random moment.
    Returns (seconds into the load, monotonic time of the kill)."""
    rng = random.Random(seed)
    delay = rng.uniform(*KILL_WINDOW)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        clients = [
            take_tickets(session, hall.base, tokens[window], random.Random(rng.random()), told)
            for window in list(CLERKS)[:KIOSKS]
        ] + [
            work_window(session, hall.base, w, tokens[w], random.Random(rng.random()), told)
            for w in CLERKS
        ]
        load = asyncio.gather(*clients)
        await asyncio.sleep(delay)
        hall.server.kill()
        killed_at = time.monotonic()
        await asyncio.wait_for(load, timeout=30)
    return delay, killed_at


async def check_log(pool: asyncpg.Pool, told: Acknowledged) -> dict[str, tuple[int, str]]:
    """The event log against the answers; returns ticket id -> (seq, number)
    of every ticket ever issued."""
    rows = await pool.fetch("SELECT seq, type, data FROM hall_events ORDER BY seq")
    seqs = [row["seq"] for row in rows]
    assert seqs == list(range(1, len(seqs) + 1)), "hall_events seqs are not gap-free 1..N"
    events = {row["seq"]: (row["type"], json.loads(row["data"])) for row in rows}
    issues = [(seq, data) for seq, (kind, data) in events.items() if kind == "ticket.issued"]
    twice = sorted(
        number
        for number, count in Counter(data["number"] for _, data in issues).items()
        if count > 1
    )
    assert not twice, f"ticket numbers issued twice: {twice}"
    issued = {data["ticket_id"]: (seq, data["number"]) for seq, data in issues}
    lost = sorted(set(told.numbers) - set(issued))
    assert not lost, f"acknowledged tickets missing after the restart: {lost}"
    for ticket_id, number in told.numbers.items():
        seq, stored_number = issued[ticket_id]
        assert stored_number == number, f"{ticket_id} was told {number}, stored {stored_number}"
        assert seq <= told.issue_seqs[ticket_id], f"{ticket_id} stored after its answer's seq"
    missing = [(window, seq) for window, seq in told.transitions if seq not in events]
    assert not missing, f"acknowledged transitions (window, seq) missing: {missing}"
    strangers = [
        (window, seq) for window, seq in told.transitions
        if events[seq][1].get("window_id") != window
    ]
    assert not strangers, f"acknowledged seqs holding another window's event: {strangers}"
    return issued


def window_explained(window: str, told: JSON, now: JSON, cut_off: str | None) -> bool:
    """A window is as its last answer said, or as the operation the kill cut
    off would have left it."""
    if (now["staff"], now["state"], now["ticket_id"]) == (
        told["staff"],
        told["state"],
        told["ticket_id"],
    ):
        return True
    if now["staff"] != told["staff"]:
        return False
    if cut_off == "call-next":
        return told["state"] == "idle" and now["state"] == "calling"
    if cut_off == "start":
        return told["state"] == "calling" and (now["state"], now["ticket_id"]) == (
            "serving",
            told["ticket_id"],
        )
    if cut_off == "finish":
        return told["state"] in ("calling", "serving") and (now["state"], now["ticket_id"]) == (
            "idle",
            None,
        )
    return False


def status_explained(
    ticket_id: str, told: str, now: str, before: dict[str, JSON], after: dict[str, JSON],
    cut_off: dict[str, str],
) -> bool:
    """A ticket is as the answers said, or moved on by exactly one cut-off
    operation at the window that had (or took) it in hand."""
    if told == now:
        return True
    for window, step in cut_off.items():
        had = before[window]["ticket_id"] == ticket_id
        takes = after[window]["ticket_id"] == ticket_id
        if (
            (step == "call-next" and (told, now) == ("waiting", "called") and takes)
            or (step == "start" and (told, now) == ("called", "serving") and had)
            or (step == "finish" and told in ("called", "serving") and now == "finished" and had)
        ):
            return True
    return False


async def check_hall(
    session: aiohttp.ClientSession,
    base: str,
    token: str,
    told: Acknowledged,
    issued: dict[str, tuple[int, str]],
) -> int:
    """The restarted hall's API against the answers, then the answers brought
    up to date with what the cut-off operations turned out to have done;
    returns how many of those had taken effect."""
    status, windows = await get(session, f"{base}/api/v1/windows", token)
    assert status == 200, windows
    after = {window["id"]: window for window in windows}
    for window, staff in CLERKS.items():
        assert after[window]["staff"] == staff, f"{window} lost its clerk: {after[window]}"
        assert window_explained(
            window, told.windows[window], after[window], told.in_flight.get(window)
        ), (
            f"{window} is {after[window]} but was last told {told.windows[window]}"
            f" (cut off: {told.in_flight.get(window)})"
        )
        held = after[window]["ticket_id"]
        assert held is None or held in issued, f"{window} holds {held}, never issued"
    strays = {w: a["state"] for w, a in after.items() if w not in CLERKS}
    assert set(strays.values()) == {"not_logged_in"}, f"windows nobody logged in: {strays}"

    semaphore = asyncio.Semaphore(8)

    async def ticket(ticket_id: str) -> JSON:
        async with semaphore:
            status, body = await get(session, f"{base}/api/v1/tickets/{ticket_id}", token)
        assert status == 200, f"{ticket_id}: {status} {body}"
        return dict(body)

    held_now = {a["ticket_id"] for a in after.values() if a["ticket_id"]}
    known = sorted(told.statuses.keys() | held_now)
    tickets = {t["id"]: t for t in await asyncio.gather(*(ticket(i) for i in known))}
    for ticket_id, number in told.numbers.items():
        assert tickets[ticket_id]["number"] == number
    for ticket_id, status_told in told.statuses.items():
        now = tickets[ticket_id]["status"]
        assert status_explained(
            ticket_id, status_told, now, told.windows, after, told.in_flight
        ), f"{ticket_id} is {now} but was last told {status_told} (cut off: {told.in_flight})"

    took_effect = sum(
        (after[w]["state"], after[w]["ticket_id"])
        != (told.windows[w]["state"], told.windows[w]["ticket_id"])
        for w in CLERKS
    )
    told.windows.update({window: after[window] for window in CLERKS})
    told.statuses = {ticket_id: t["status"] for ticket_id, t in tickets.items()}
    told.in_flight.clear()
    return took_effect


async def check_numbering_goes_on(
    session: aiohttp.ClientSession,
    base: str,
    token: str,
    told: Acknowledged,
    issued: dict[str, tuple[int, str]],
) -> None:
    """The first ticket of each prefix after the restart comes after every
    number issued before, killed or not."""
    for prefix, service in FIRST_AFTER_RESTART.items():
        status, ticket = await post(session, f"{base}/api/v1/tickets", token, {"service": service})
        assert status == 201, ticket
        before = [int(n[len(prefix):]) for _, n in issued.values() if n.startswith(prefix)]
        number = ticket["number"]
        assert number.startswith(prefix)
        assert number not in {n for _, n in issued.values()}, f"{number} was issued before"
        assert int(number[len(prefix):]) > max(before, default=0), (
            f"{number} after the restart, though {prefix}{max(before):03d} was issued before"
        )
        told.issued(ticket)


async def test_a_server_killed_under_load_keeps_every_acknowledged_change_after_restart(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool
) -> None:
    hall = Hall(tmp_path, db_url)
    told = Acknowledged()
    recoveries: list[float] = []
    rounds: list[JSON] = []
    try:
        hall.start()
        async with aiohttp.ClientSession() as session:
            await hall.ready(session, timeout=30)
            tokens = await open_hall(session, hall.base, told)
        for round_no, seed in enumerate(KILL_SEEDS, start=1):
            answers_before = told.answers
            delay, killed_at = await run_load_and_kill(hall, tokens, seed, told)
            answers = told.answers - answers_before
            assert answers >= MIN_ANSWERS, f"only {answers} answers before the kill: no load"
            assert not told.unexpected, f"unexpected answers under load: {told.unexpected[:5]}"
            restarted_at = time.monotonic()
            hall.start()
            async with aiohttp.ClientSession() as session:
                recovered_at = await hall.ready(session, timeout=RECOVERY_LIMIT + 10)
                recovery = recovered_at - killed_at
                recoveries.append(recovery)
                cut_off = len(told.in_flight)
                checked = len(told.numbers) + len(told.transitions)
                issued = await check_log(pool, told)
                took_effect = await check_hall(session, hall.base, tokens[""], told, issued)
                await check_numbering_goes_on(session, hall.base, tokens[""], told, issued)
                print(
                    f"\nround {round_no}: SIGKILL {delay:.2f} s into the load after {answers}"
                    f" answers; {took_effect} of {cut_off} cut-off window operations had"
                    f" been stored; ready again {recovery:.2f} s after the kill,"
                    f" {recovered_at - restarted_at:.2f} s after the restart;"
                    f" {checked} acknowledged tickets and transitions checked"
                )
                rounds.append({
                    "seed": seed, "kill_after_s": round(delay, 3), "answers": answers,
                    "restart_to_ready_s": round(recovered_at - restarted_at, 3),
                    "kill_to_ready_s": round(recovery, 3),
                    "acknowledged_checked": checked,
                    "cut_off": cut_off, "cut_off_stored": took_effect,
                })
            assert recovery < RECOVERY_LIMIT, f"recovery took {recovery:.1f} s"
    except Exception as failure:
        raise AssertionError(f"{failure!r}\n{hall.logs()}") from failure
    finally:
        hall.kill_all()
    print(f"recovery times: {', '.join(f'{r:.2f} s' for r in recoveries)}")
    record_figures("kill_9_under_load", {"rounds": rounds})
