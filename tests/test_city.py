"""A city: several server processes share the halls, one leader per hall (G4).

The leadership tests run real advisory locks on the test's database with
stand-in halls; the process tests run three ``run_hall.py city`` processes on
one database and one Mosquitto and kill one under load.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from devices import messages as m
from devices.client import DeviceClient
from devices.topics import DeviceKind
from hall.city_config import load_city_config
from hall.committer import CommitFailed
from hall.config import ConfigError
from hall.leadership import Leadership
from queueing import Source
from tests.city_kit import CityServer, get_json, leaders, wait_all_led, write_city
from tests.hall_kit import started
from tests.mqtt_kit import Mosquitto
from tests.pg_kit import private_postgres
from tests.test_crash_safety import CUT_OFF, SERVICES, Acknowledged, open_hall, post

HALLS = [f"h{n}" for n in range(7)]


# --------------------------------------------------------------- the city file


def test_a_city_file_loads_every_hall_file_it_names(tmp_path: Path) -> None:
    city = load_city_config(write_city(tmp_path, 3))
    assert [hall.layout.hall_id for hall in city.halls] == ["hall-00", "hall-01", "hall-02"]
    assert len({hall.http_port for hall in city.halls}) == 3
    assert city.advertise == "http://127.0.0.1"


def test_two_halls_with_one_id_or_one_port_are_refused(tmp_path: Path) -> None:
    city = write_city(tmp_path, 2)
    second = tmp_path / "halls" / "hall-01.toml"
    first = (tmp_path / "halls" / "hall-00.toml").read_text(encoding="utf-8")
    second.write_text(first, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_city_config(city)
    text = str(refused.value)
    assert "hall id 'hall-00' is in 2 hall files" in text
    assert "is given to 2 halls" in text


def test_a_broker_url_of_another_scheme_is_refused_when_the_city_file_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    city = write_city(tmp_path, 1)
    monkeypatch.setenv("HALL_MQTT_URL", "http://broker.example:1883")
    with pytest.raises(ConfigError, match=r"HALL_MQTT_URL: an MQTT broker URL must start with"):
        load_city_config(city)


def test_a_hall_pattern_that_matches_nothing_is_refused(tmp_path: Path) -> None:
    city = tmp_path / "city.toml"
    city.write_text('[city]\nname = "x"\nhalls = ["nowhere/*.toml"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"city\.halls\[0\]: no hall file matches"):
        load_city_config(city)


# --------------------------------------------------------------- leadership


class Member:
    """A leadership with stand-in halls: leading one is being told to."""

    def __init__(self, url: str, log: list[tuple[str, str, str]], name: str) -> None:
        self.name = name
        self.log = log

        async def lead(hall_id: str) -> bool:
            log.append((name, "lead", hall_id))
            return True

        async def resign(hall_id: str) -> None:
            log.append((name, "resign", hall_id))

        self.leadership = Leadership(url, HALLS, lead=lead, resign=resign, interval=0.1)
        self.task = asyncio.create_task(self.leadership.run())

    async def leave(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@pytest.fixture
async def members(db_url: str) -> AsyncIterator[list[Member]]:
    made: list[Member] = []
    yield made
    for member in made:
        await member.leave()


async def settled(members: list[Member], timeout: float = 10.0) -> None:
    """Until every hall is led exactly once and nobody holds more than a fair share."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        led = Counter(h for m in members for h in m.leadership.led)
        fair = math.ceil(len(HALLS) / len(members))  # the largest share
        if (sorted(led) == sorted(HALLS) and set(led.values()) == {1}
                and all(len(m.leadership.led) <= fair for m in members)
                and all(m.leadership.members == len(members) for m in members)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError({m.name: sorted(m.leadership.led) for m in members})


async def test_halls_are_shared_fairly_and_each_is_led_by_one_process(
    db_url: str, members: list[Member]
) -> None:
    log: list[tuple[str, str, str]] = []
    members += [Member(db_url, log, name) for name in "abc"]
    await settled(members)
    assert sorted(len(m.leadership.led) for m in members) == [2, 2, 3]


async def test_the_halls_of_a_process_that_goes_are_taken_within_a_few_rounds(
    db_url: str, members: list[Member]
) -> None:
    log: list[tuple[str, str, str]] = []
    members += [Member(db_url, log, name) for name in "abc"]
    await settled(members)
    gone = members.pop(0)
    orphans = set(gone.leadership.led)
    began = time.monotonic()
    await gone.leave()
    await settled(members, timeout=5.0)
    assert time.monotonic() - began < 2.0
    assert orphans <= {h for m in members for h in m.leadership.led}


async def test_a_process_that_joins_gets_a_fair_share_handed_over(
    db_url: str, members: list[Member]
) -> None:
    log: list[tuple[str, str, str]] = []
    members.append(Member(db_url, log, "a"))
    await settled(members)
    assert len(members[0].leadership.led) == len(HALLS)
    members.append(Member(db_url, log, "b"))
    await settled(members)
    handed = [hall for who, what, hall in log if (who, what) == ("a", "resign")]
    assert len(handed) == 3
    taken = [hall for who, what, hall in log if (who, what) == ("b", "lead")]
    assert sorted(taken) == sorted(handed)


async def test_a_process_whose_lock_connection_is_cut_stops_leading_at_once(
    db_url: str, members: list[Member]
) -> None:
    log: list[tuple[str, str, str]] = []
    members += [Member(db_url, log, name) for name in "ab"]
    await settled(members)
    victim = members[0].leadership
    held = set(victim.led)
    admin = await asyncpg.connect(db_url)
    try:
        cut = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
            "WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            0x5348_0001, victim.slot)
    finally:
        await admin.close()
    assert cut == 1
    deadline = time.monotonic() + 3
    while victim.led and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert not victim.led
    assert {hall for who, what, hall in log if (who, what) == ("a", "resign")} >= held
    await settled(members)


async def test_a_stop_while_halls_are_starting_lets_them_start_then_resigns_every_one(
    db_url: str,
) -> None:
    """A SIGTERM can arrive while a round is starting halls: cancelling it would
    leave them half started with nobody to stop them."""
    log: list[tuple[str, str]] = []
    starting = asyncio.Event()
    may_finish = asyncio.Event()

    async def lead(hall_id: str) -> bool:
        log.append(("lead", hall_id))
        starting.set()
        await may_finish.wait()
        log.append(("led", hall_id))
        return True

    async def resign(hall_id: str) -> None:
        log.append(("resign", hall_id))

    leadership = Leadership(db_url, HALLS, lead=lead, resign=resign, interval=0.1)
    running = asyncio.create_task(leadership.run())
    await asyncio.wait_for(starting.wait(), 5)
    stopping = asyncio.create_task(leadership.stop(running))
    await asyncio.sleep(0.3)
    assert not stopping.done()
    may_finish.set()
    await asyncio.wait_for(stopping, 5)
    assert running.done()
    led = {hall for what, hall in log if what == "led"}
    assert led == set(HALLS)
    assert {hall for what, hall in log if what == "resign"} == led
    assert not leadership.led


async def test_a_stale_leaders_commit_is_refused_and_it_rebuilds_behind_the_new_one(
    pool: asyncpg.Pool,
) -> None:
    """Two runtimes of one hall, as when a leader has not yet noticed that it lost
    its lock: the event sequence lets only one of them number a ticket."""
    stale = await started(pool)
    await stale.execute("login", "W1", "zhang")
    await stale.committer.drain()
    leader = await started(pool)
    first = await leader.execute("issue", "biz", Source.WALK_IN)
    with pytest.raises(CommitFailed):
        await stale.execute("issue", "biz", Source.WALK_IN)
    for _ in range(100):
        if stale.ready:
            break
        await asyncio.sleep(0.05)
    assert [t.number for t in stale.engine.tickets()] == [first[0].event.number]  # type: ignore[attr-defined]
    rows = await pool.fetch("SELECT data FROM hall_events WHERE type = 'ticket.issued'")
    assert [json.loads(row["data"])["number"] for row in rows] == ["A001"]
    await stale.stop()
    await leader.stop()


# --------------------------------------------------------------- three processes

CITY_HALLS = 6


class Kiosks:
    """One ticket taker per hall, talking to the hall's port as a kiosk would; when
    its leader dies it keeps retrying until a new leader answers."""

    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = ports
        self.tokens: dict[str, str] = {}
        self.acknowledged: dict[str, dict[str, str]] = {hall: {} for hall in ports}
        self.cut_off = Counter[str]()
        self.stop = asyncio.Event()

    async def open_halls(self, session: aiohttp.ClientSession) -> None:
        """Clerks at their windows in every hall, so that tickets are taken; the
        kiosk uses a clerk's session (staff may take tickets)."""
        for hall, port in self.ports.items():
            tokens = await open_hall(session, f"http://127.0.0.1:{port}", Acknowledged())
            self.tokens[hall] = tokens["w04"]

    async def run(self, session: aiohttp.ClientSession) -> None:
        await asyncio.gather(*(self._kiosk(session, hall) for hall in self.ports))

    async def _kiosk(self, session: aiohttp.ClientSession, hall: str) -> None:
        base = f"http://127.0.0.1:{self.ports[hall]}"
        rng = random.Random(hall)
        token = self.tokens[hall]
        while not self.stop.is_set():
            try:
                status, body = await post(session, f"{base}/api/v1/tickets", token,
                                          {"service": rng.choice(SERVICES)})
            except CUT_OFF:
                self.cut_off[hall] += 1
                await asyncio.sleep(0.05)
                continue
            if status == 201:
                self.acknowledged[hall][body["id"]] = body["number"]
            elif status == 503:
                await asyncio.sleep(0.05)
            else:
                raise AssertionError(f"{hall}: {status} {body}")
            await asyncio.sleep(rng.uniform(0.005, 0.03))


PACE = 0.1
"""Seconds between a bus kiosk's requests: well under the hall's per-device rate limit
(hall.device_link.RATE_PER_SECOND), which drops what a device sends beyond it."""


class BusKiosk:
    """A kiosk on the shared broker: it knows no server, only its hall's topics, and
    asks again with the same id when its hall's server comes online, or when no reply
    comes within the real 10 s (docs/mqtt.md)."""

    def __init__(self, hall: str, mqtt_url: str) -> None:
        self.device = DeviceClient(hall, "kiosk-f1", DeviceKind.KIOSK, mqtt_url)
        self.acknowledged: dict[str, str] = {}
        self.waited: list[float] = []
        """Seconds each request waited for its reply, retries included."""
        self.stop = asyncio.Event()

    async def run(self) -> None:
        """The device goes off the bus only after its last request is answered: a
        reply arriving after it left would leave that request waiting forever."""
        gone = asyncio.Event()
        connection = asyncio.create_task(self.device.run(gone))
        await self.device.wait_connected()
        rng = random.Random(7)
        count = 0
        while not self.stop.is_set():
            count += 1
            began = time.monotonic()
            reply = await self.device.request(
                m.TakeTicket(id=f"bus-ticket-{count:04d}", service=rng.choice(SERVICES)))
            self.waited.append(time.monotonic() - began)
            assert reply.ok and reply.result is not None, reply
            ticket = reply.result["ticket"]
            self.acknowledged[ticket["id"]] = ticket["number"]
            await asyncio.sleep(PACE)
        gone.set()
        await connection


async def issued(db_url: str) -> dict[str, list[tuple[str, str]]]:
    connection = await asyncpg.connect(db_url)
    try:
        rows = await connection.fetch(
            "SELECT hall_id, data FROM hall_events WHERE type = 'ticket.issued' "
            "ORDER BY hall_id, seq")
    finally:
        await connection.close()
    found: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        data = json.loads(row["data"])
        found.setdefault(row["hall_id"], []).append((data["ticket_id"], data["number"]))
    return found


async def test_a_killed_processs_halls_are_taken_over_without_a_ticket_lost_or_numbered_twice(
    tmp_path: Path, db_url: str, mosquitto: Mosquitto
) -> None:
    city_file = write_city(tmp_path, CITY_HALLS)
    city = load_city_config(city_file)
    ports = {hall.layout.hall_id: hall.http_port for hall in city.halls}
    processes = [CityServer(city_file, name, db_url, mosquitto.url, tmp_path / f"{name}.log")
                 for name in ("east", "west", "north")]
    kiosks = Kiosks(ports)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            before = await wait_all_led(session, processes, CITY_HALLS, timeout=40)
            assert sorted(Counter(before.values()).values()) == [2, 2, 2]
            await kiosks.open_halls(session)
            load = asyncio.create_task(kiosks.run(session))
            bus = BusKiosk("hall-00", mosquitto.url)
            on_bus = asyncio.create_task(bus.run())
            await asyncio.sleep(1.5)
            victim = next(p for p in processes if p.name == before["hall-00"])
            orphans = {hall for hall, leader in before.items() if leader == victim.name}
            counted = {hall: len(kiosks.acknowledged[hall]) for hall in orphans}
            victim.kill()
            killed = time.monotonic()
            survivors = [p for p in processes if p is not victim]
            after = await wait_all_led(session, survivors, CITY_HALLS, timeout=15,
                                       allowed={p.name for p in survivors})
            took = time.monotonic() - killed
            served = await served_again(kiosks, load, orphans, counted, timeout=15)
            print(f"\ncity takeover: halls {sorted(orphans)} led again {took:.2f} s after "
                  f"kill -9, served again after {served - killed:.2f} s")
            bus_before = len(bus.acknowledged)
            await asyncio.sleep(2.5)
            kiosks.stop.set()
            bus.stop.set()
            await load
            await on_bus
            print(f"the bus kiosk's slowest request waited {max(bus.waited):.2f} s")
            assert max(bus.waited) < 5.0, (
                "a request in flight in the takeover waited for its reply timeout")
            assert len(bus.acknowledged) > bus_before, "the bus kiosk was not served again"
            assert took < 10
            assert {hall: after[hall] for hall in before if hall not in orphans} == {
                hall: before[hall] for hall in before if hall not in orphans}
    finally:
        for process in processes:
            process.kill()
    told = {hall: dict(told) for hall, told in kiosks.acknowledged.items()}
    told["hall-00"].update(bus.acknowledged)
    await assert_kept(db_url, told)
    assert all(kiosks.cut_off[hall] > 0 for hall in orphans), "the kill cut nobody off"


async def assert_kept(db_url: str, acknowledged: dict[str, dict[str, str]]) -> None:
    """Every acknowledged ticket stored with the number it was told, none numbered twice."""
    stored = await issued(db_url)
    for hall, told in acknowledged.items():
        numbers = [number for _, number in stored.get(hall, [])]
        twice = [number for number, n in Counter(numbers).items() if n > 1]
        assert not twice, f"{hall}: numbered twice: {twice}"
        ids = dict(stored.get(hall, []))
        lost = {ticket_id for ticket_id in told if ticket_id not in ids}
        assert not lost, f"{hall}: acknowledged tickets lost: {sorted(lost)}"
        assert all(ids[ticket_id] == number for ticket_id, number in told.items())


async def served_again(kiosks: Kiosks, load: asyncio.Task[None], halls: set[str],
                       counted: dict[str, int], timeout: float) -> float:
    """When every orphaned hall has issued tickets again (more than 3 since the kill)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if load.done():
            load.result()
        if all(len(kiosks.acknowledged[h]) > counted[h] + 3 for h in halls):
            return time.monotonic()
        await asyncio.sleep(0.02)
    raise AssertionError({h: len(kiosks.acknowledged[h]) - counted[h] for h in halls})


async def test_the_city_port_redirects_to_a_halls_advertised_leader_and_stops_cleanly(
    tmp_path: Path, db_url: str, mosquitto: Mosquitto
) -> None:
    city_file = write_city(tmp_path, 2)
    process = CityServer(city_file, "only", db_url, mosquitto.url, tmp_path / "only.log",
                         "--advertise", "http://localhost/")
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            await wait_all_led(session, [process], 2, timeout=30)
            async with session.get(f"{process.base}/halls/hall-01/api/v1/hall?x=1",
                                   allow_redirects=False) as response:
                assert response.status == 307
                location = response.headers["Location"]
            port = load_city_config(city_file).halls[1].http_port
            assert location == f"http://localhost:{port}/api/v1/hall?x=1"
            hall = await get_json(session, location)
            assert hall["hall"]["id"] == "hall-01"
            async with session.get(f"{process.base}/halls/nowhere/api/v1/hall") as response:
                assert response.status == 404
            assert (await leaders(session, process)) == {"hall-00": "only", "hall-01": "only"}
            metrics = await (await session.get(f"{process.base}/metrics")).text()
            assert 'smarthall_city_halls_led{process="only"} 2.0' in metrics
        assert process.terminate() == 0
        assert "released hall hall-01" in process.log.read_text(encoding="utf-8")
    finally:
        process.kill()


def test_the_demo_city_loads() -> None:
    city = load_city_config(Path(__file__).resolve().parent.parent / "config" / "city-demo.toml")
    assert [hall.layout.hall_id for hall in city.halls] == ["jiangyang", "longmatan"]


async def test_a_city_process_leads_its_halls_again_when_postgres_comes_back(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Losing the database is losing the locks: the process stops serving every hall
    (it can no longer prove it leads), then takes them back when it can."""
    with private_postgres() as postgres:
        db_url = await postgres.create_database("city")
        city_file = write_city(tmp_path, 2)
        ports = {hall.layout.hall_id: hall.http_port for hall in load_city_config(city_file).halls}
        process = CityServer(city_file, "solo", db_url, mosquitto.url, tmp_path / "solo.log")
        kiosks = Kiosks(ports)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                await wait_all_led(session, [process], 2, timeout=30)
                await kiosks.open_halls(session)
                load = asyncio.create_task(kiosks.run(session))
                await asyncio.sleep(1.0)
                postgres.stop("immediate")
                await asyncio.sleep(2.0)
                counted = {hall: len(told) for hall, told in kiosks.acknowledged.items()}
                postgres.start()
                back = time.monotonic()
                await served_again(kiosks, load, set(ports), counted, timeout=30)
                print(f"\ncity after a PostgreSQL restart: serving again in "
                      f"{time.monotonic() - back:.2f} s")
                kiosks.stop.set()
                await load
                assert all(kiosks.cut_off[hall] > 0 for hall in ports), "nobody was cut off"
        finally:
            process.kill()
        await assert_kept(db_url, kiosks.acknowledged)
