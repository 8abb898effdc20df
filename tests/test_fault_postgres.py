"""PostgreSQL restarted under load: while it is away the hall says so (503
problem documents, not ready on /readyz, never a 500 or a hang) and stays up;
when it is back the hall recovers by itself, and every acknowledged ticket
and transition is in the database and in the hall's state, with numbering
going on and no number issued twice.

A real server subprocess runs on a private PostgreSQL (tests/pg_kit.py) that
the test stops and starts, once with ``pg_ctl stop -m fast`` and once with
``-m immediate`` (a database crash, recovered from WAL), on one cluster and
one server, so the second outage also follows the first recovery. Kiosks take
tickets with a device token, which needs no database to authenticate, so
their tickets reach the group committer during the outage and fail there;
clerks work their windows with staff sessions, which are looked up in the
database, so their requests fail already at authentication.

A refused change may still have been stored when the connection died under
its commit: a clerk whose operation was refused reads its window back once
the hall is ready again and goes on from what it finds, which must be what
the hall had before or what the refused operation would have made of it.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from hall.auth import token_sha256
from tests.mqtt_kit import Mosquitto
from tests.pg_kit import PrivatePostgres, StopMode, private_postgres
from tests.test_crash_safety import (
    CLERKS,
    CUT_OFF,
    JSON,
    NEXT_STEP,
    PASSWORD,
    SERVICES,
    Acknowledged,
    Hall,
    auth,
    check_hall,
    check_log,
    check_numbering_goes_on,
    get,
    open_hall,
    post,
    record_figures,
    window_explained,
)

KIOSK_TOKEN = "fault-test-kiosk-2026"
KIOSK_ENTRY = f"""
[[auth.tokens]]
name = "fault-kiosk"
role = "device"
token_sha256 = "{token_sha256(KIOSK_TOKEN)}"
"""
"""A device that is no registered kiosk, so the hall takes its tickets without
a printer (hall/kiosk_print.py)."""
KIOSKS = 3
OUTAGES: tuple[StopMode, ...] = ("fast", "immediate")
LOAD_BEFORE = 1.0
"""Seconds of load before PostgreSQL stops, and again after the hall is ready."""
DOWN_FOR = 3.0
"""Seconds PostgreSQL stays down, counted from when it has stopped."""
ANSWER_LIMIT = 5.0
"""No request may go unanswered longer, outage or not."""
RECOVERY_LIMIT = 15.0
"""Seconds from PostgreSQL taking connections again to /readyz answering 200."""
MIN_ANSWERS = 20
"""Acknowledged answers each stretch of load must have had to count as load."""
REFUSED_BACKOFF = 0.05
"""What a client waits after a 503 before it asks again."""
SEED = 20260308
PAGE = 5000
"""The ticket list's largest page."""


@dataclass
class Outage:
    """What the clients saw of one outage."""

    refused: int = 0
    """503 answers with an ``unavailable`` problem document: the only refusal
    a client may get for the outage."""
    wrong: list[str] = field(default_factory=list)
    """Answers no client should have had: a 500, any other 503, no answer
    within ANSWER_LIMIT, a refused connection."""
    slowest: float = 0.0
    """Seconds of the slowest answer."""
    uncertain: dict[str, str] = field(default_factory=dict)
    """Window -> the refused operation that may have been stored all the same."""

    def answered(self, started: float) -> None:
        self.slowest = max(self.slowest, time.monotonic() - started)

    def refusal(self, status: int, body: Any, content_type: str, what: str) -> None:
        code = body.get("code") if isinstance(body, dict) else None
        if (status, content_type, code) == (503, "application/problem+json", "unavailable"):
            self.refused += 1
        else:
            self.wrong.append(f"{what}: {status} {content_type} {body}")


async def ask(
    session: aiohttp.ClientSession, method: str, url: str, token: str | None, outage: Outage,
    body: JSON | None = None,
) -> tuple[int, Any, str] | None:
    """One request; None (and a wrong answer noted) when none came in time."""
    started = time.monotonic()
    try:
        async with session.request(method, url, json=body, headers=auth(token)) as response:
            answer = await response.json(content_type=None)
            outage.answered(started)
            return response.status, answer, response.content_type
    except CUT_OFF as exc:
        outage.wrong.append(f"{method} {url}: no answer ({exc!r})")
        return None


async def kiosk(
    session: aiohttp.ClientSession, base: str, rng: random.Random, told: Acknowledged,
    outage: Outage, stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        service = rng.choice(SERVICES)
        answer = await ask(session, "POST", f"{base}/api/v1/tickets", KIOSK_TOKEN, outage,
                           {"service": service})
        if answer is not None and answer[0] == 201:
            told.issued(answer[1])
            continue
        if answer is not None:
            outage.refusal(*answer, what=f"ticket for {service}")
        await asyncio.sleep(REFUSED_BACKOFF)


async def resync(
    session: aiohttp.ClientSession, base: str, window: str, token: str, told: Acknowledged,
    outage: Outage,
) -> bool:
    """Once the hall is ready, read back a window whose last operation was
    refused; True when it is known again."""
    status, _ = await get(session, f"{base}/readyz", "")
    if status != 200:
        return False
    status, now = await get(session, f"{base}/api/v1/windows/{window}", token)
    if status != 200:
        return False
    step = outage.uncertain.pop(window)
    before = told.windows[window]
    if not window_explained(window, before, now, step):
        outage.wrong.append(f"{window} is {now} after a refused {step}; it was {before}")
    elif (now["state"], now["ticket_id"]) != (before["state"], before["ticket_id"]):
        moved = before["ticket_id"] if step == "finish" else now["ticket_id"]
        told.statuses[moved] = {"call-next": "called", "start": "serving"}.get(step, "finished")
    told.windows[window] = now
    return True


async def clerk(
    session: aiohttp.ClientSession, base: str, window: str, token: str, rng: random.Random,
    told: Acknowledged, outage: Outage, stop: asyncio.Event,
) -> None:
    """Call, start and finish one ticket after another, each step from the
    window's last answer; after a refusal, from the window read back."""
    while not stop.is_set():
        if window in outage.uncertain:
            if not await resync(session, base, window, token, told, outage):
                await asyncio.sleep(REFUSED_BACKOFF)
            continue
        step = NEXT_STEP[told.windows[window]["state"]]
        answer = await ask(session, "POST", f"{base}/api/v1/windows/{window}/{step}", token,
                           outage)
        if answer is None:
            outage.uncertain[window] = step
            continue
        status, body, content_type = answer
        if status == 200:
            told.window_answered(window, step, body)
        elif status == 409 and body.get("code") == "nothing_waiting":
            pass
        else:
            outage.refusal(status, body, content_type, f"{step} at {window}")
            outage.uncertain[window] = step
            await asyncio.sleep(REFUSED_BACKOFF)
            continue
        await asyncio.sleep(rng.uniform(0, 0.01))


async def wait_until(
    session: aiohttp.ClientSession, hall: Hall, url: str, status: int, limit: float
) -> float:
    """Poll ``url`` until it answers ``status``; returns the monotonic time it did."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert hall.server.process.poll() is None, "the server died"
        async with session.get(url) as response:
            if response.status == status:
                return time.monotonic()
        await asyncio.sleep(0.02)
    raise AssertionError(f"{url} did not answer {status} within {limit} s")


async def while_down(session: aiohttp.ClientSession, hall: Hall) -> float:
    """What the hall says about itself with its database away: alive, not
    ready (with a problem document), and still showing the hall; returns when
    it first said it was not ready."""
    not_ready_at = await wait_until(session, hall, f"{hall.base}/readyz", 503, ANSWER_LIMIT)
    async with session.get(f"{hall.base}/readyz") as response:
        assert response.content_type == "application/problem+json"
        readiness = await response.json()
    assert response.status == 503 and readiness["code"] == "not_ready", readiness
    async with session.get(f"{hall.base}/healthz") as response:
        assert response.status == 200, "the hall is not alive while its database is away"
    async with session.get(f"{hall.base}/api/v1/hall") as response:
        assert response.status == 200, "the hall's public state is not served"
    return not_ready_at


async def restart_under_load(
    hall: Hall, pg: PrivatePostgres, tokens: dict[str, str], mode: StopMode, seed: int,
    told: Acknowledged,
) -> JSON:
    """Load, PostgreSQL stopped with ``mode`` and started again DOWN_FOR later,
    load until the hall has had LOAD_BEFORE seconds of it back; returns the
    figures of the outage."""
    rng = random.Random(seed)
    outage, stop = Outage(), asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=ANSWER_LIMIT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        clients = [
            kiosk(session, hall.base, random.Random(rng.random()), told, outage, stop)
            for _ in range(KIOSKS)
        ] + [
            clerk(session, hall.base, w, tokens[w], random.Random(rng.random()), told, outage,
                  stop)
            for w in CLERKS
        ]
        load = asyncio.gather(*clients)
        await asyncio.sleep(LOAD_BEFORE)
        before = told.answers
        stopping = time.monotonic()
        await asyncio.to_thread(pg.stop, mode)
        stopped = time.monotonic()
        not_ready_at = await while_down(session, hall)
        during = told.answers
        await asyncio.sleep(max(0.0, stopped + DOWN_FOR - time.monotonic()))
        await asyncio.to_thread(pg.start)
        back = time.monotonic()
        acked_while_down = told.answers - during
        ready = await wait_until(session, hall, f"{hall.base}/readyz", 200, RECOVERY_LIMIT)
        after = told.answers
        await asyncio.sleep(LOAD_BEFORE)
        stop.set()
        await asyncio.wait_for(load, timeout=ANSWER_LIMIT + 5)
        deadline = time.monotonic() + ANSWER_LIMIT
        while outage.uncertain and time.monotonic() < deadline:
            window = next(iter(outage.uncertain))
            if not await resync(session, hall.base, window, tokens[window], told, outage):
                await asyncio.sleep(REFUSED_BACKOFF)
    assert not outage.uncertain, f"windows not known again: {outage.uncertain}"
    assert not outage.wrong, f"answers no client should have had: {outage.wrong[:5]}"
    assert before >= MIN_ANSWERS, f"only {before} answers before the outage: no load"
    assert told.answers - after >= MIN_ANSWERS, "the hall took no load once ready again"
    assert acked_while_down == 0, f"{acked_while_down} changes acknowledged with no database"
    assert outage.refused > 0, "no client was told the hall is unavailable"
    return {
        "stop_mode": mode,
        "answers_before": before,
        "answers_after": told.answers - after,
        "not_ready_after_stop_s": round(not_ready_at - stopping, 3),
        "pg_down_s": round(back - stopped, 3),
        "pg_back_to_ready_s": round(ready - back, 3),
        "refused_503": outage.refused,
        "slowest_answer_s": round(outage.slowest, 3),
    }


async def check_hall_view(
    session: aiohttp.ClientSession, base: str, token: str, told: Acknowledged
) -> None:
    """GET /api/v1/hall, the public view, agrees with the windows and with
    every acknowledged ticket still waiting."""
    status, view = await get(session, f"{base}/api/v1/hall", token)
    assert status == 200, view
    waiting: list[JSON] = []
    for service in view["services"]:  # one page each: a fast machine queues thousands
        status, page = await get(
            session, f"{base}/api/v1/tickets?status=waiting&service={service['id']}"
            f"&limit={PAGE}", token)
        assert status == 200, page
        assert len(page) < PAGE, f"{service['id']}: over {PAGE} waiting, the check would miss some"
        waiting += page
    waiting_ids = {ticket["id"] for ticket in waiting}
    told_waiting = {t for t, status in told.statuses.items() if status == "waiting"}
    assert told_waiting <= waiting_ids, f"acknowledged, not waiting: {told_waiting - waiting_ids}"
    counts = Counter(ticket["service"] for ticket in waiting)
    shown = {s["id"]: s["waiting"] for s in view["services"] if s["waiting"]}
    assert shown == dict(counts), f"/api/v1/hall waiting {shown}, tickets waiting {counts}"
    windows = {w["id"]: w for w in view["windows"]}
    for window, last in told.windows.items():
        held = told.numbers.get(last["ticket_id"]) if last["ticket_id"] else None
        assert (windows[window]["state"], windows[window]["staff"]) == (
            last["state"], last["staff"]), f"{window} in /api/v1/hall: {windows[window]}"
        assert held is None or windows[window]["ticket"] == held, windows[window]


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of this module's own, to stop and start: the machine's
    serves everyone else. Each test has a database of its own on it."""
    with private_postgres() as pg:
        yield pg


async def hall_on(
    postgres: PrivatePostgres, tmp_path: Path, mosquitto: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Hall, str]:
    """The always-open demo hall, with the test kiosk's token, on a fresh
    database of ``postgres``; not started. Returns it and its database URL."""
    monkeypatch.setenv("HALL_MQTT_URL", mosquitto.url)
    db_url = await postgres.create_database(f"smarthall_{uuid.uuid4().hex[:12]}")
    hall = Hall(tmp_path, db_url)
    hall.config.write_text(hall.config.read_text(encoding="utf-8") + KIOSK_ENTRY,
                           encoding="utf-8")
    return hall, db_url


async def staff_window(session: aiohttp.ClientSession, hall: Hall, window: str) -> None:
    """Its clerk logged in at ``window``, so that the hall issues tickets for
    its services (one login: each costs an argon2 hash)."""
    staff = CLERKS[window]
    status, body = await post(session, f"{hall.base}/api/v1/auth/login", None,
                              {"staff_id": staff, "password": PASSWORD})
    assert status == 200, body
    status, body = await post(session, f"{hall.base}/api/v1/windows/{window}/login",
                              body["token"], {})
    assert status == 200, body


async def take_ticket(session: aiohttp.ClientSession, hall: Hall) -> tuple[int, Any]:
    return await post(session, f"{hall.base}/api/v1/tickets", KIOSK_TOKEN,
                      {"service": SERVICES[0]})


async def test_a_postgres_restart_while_the_hall_is_idle_costs_no_change(
    tmp_path: Path, postgres: PrivatePostgres, mosquitto: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer's held connection dies with the restart while nobody writes:
    the first change after it must go through on a fresh one, not be refused."""
    hall, _ = await hall_on(postgres, tmp_path, mosquitto, monkeypatch)
    try:
        hall.start()
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=ANSWER_LIMIT)
        ) as session:
            await hall.ready(session, timeout=30)
            await staff_window(session, hall, "w04")
            status, first = await take_ticket(session, hall)
            assert status == 201, first
            await asyncio.to_thread(postgres.stop, "fast")
            await wait_until(session, hall, f"{hall.base}/readyz", 503, ANSWER_LIMIT)
            await asyncio.to_thread(postgres.start)
            await wait_until(session, hall, f"{hall.base}/readyz", 200, RECOVERY_LIMIT)
            status, second = await take_ticket(session, hall)
            assert status == 201, f"the first change after the restart: {status} {second}"
            assert int(second["number"][1:]) == int(first["number"][1:]) + 1, second
    except Exception as failure:
        raise AssertionError(f"{failure!r}\n{hall.logs()}\n{postgres.log_tail()}") from failure
    finally:
        hall.kill_all()


async def test_postgres_restarted_under_load_loses_nothing_acknowledged(
    tmp_path: Path, postgres: PrivatePostgres, mosquitto: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hall, db_url = await hall_on(postgres, tmp_path, mosquitto, monkeypatch)
    told = Acknowledged()
    outages: list[JSON] = []
    try:
        hall.start()
        async with aiohttp.ClientSession() as session:
            await hall.ready(session, timeout=30)
            tokens = await open_hall(session, hall.base, told)
        for round_no, mode in enumerate(OUTAGES):
            figures = await restart_under_load(hall, postgres, tokens, mode, SEED + round_no,
                                               told)
            pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
            try:
                issued = await check_log(pool, told)
            finally:
                await pool.close()
            async with aiohttp.ClientSession() as session:
                figures["acknowledged_checked"] = len(told.numbers) + len(told.transitions)
                await check_hall(session, hall.base, tokens[""], told, issued)
                await check_hall_view(session, hall.base, tokens[""], told)
                await check_numbering_goes_on(session, hall.base, tokens[""], told, issued)
            assert hall.server.process.poll() is None, "the server exited"
            print(f"\nPostgreSQL stopped ({mode}) for {figures['pg_down_s']:.2f} s under load:"
                  f" {figures['refused_503']} answers 503, slowest answer"
                  f" {figures['slowest_answer_s']:.2f} s; ready again"
                  f" {figures['pg_back_to_ready_s']:.2f} s after PostgreSQL was back;"
                  f" {figures['acknowledged_checked']} acknowledged tickets and transitions"
                  " checked")
            outages.append(figures)
    except Exception as failure:
        raise AssertionError(f"{failure!r}\n{hall.logs()}\n{postgres.log_tail()}") from failure
    finally:
        hall.kill_all()
    record_figures("postgres_restart_under_load", {"outages": outages})
