"""One LISTEN per process for the intake notes of every hall it serves."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg

from hall.notify.listener import NotifyListener


async def until(condition: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def listening(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' "
        "AND datname = current_database()"))


async def test_a_note_wakes_only_its_halls_intake(pool: asyncpg.Pool) -> None:
    woken: Counter[str] = Counter()
    listener = NotifyListener(pool)
    listener.subscribe("east", lambda: woken.update(["east"]))
    listener.subscribe("west", lambda: woken.update(["west"]))
    await until(lambda: woken["east"] >= 2 and woken["west"] >= 2)  # subscribed, then listening
    before = woken.copy()
    await pool.execute("SELECT pg_notify('hall_notify', 'east')")
    await until(lambda: woken["east"] == before["east"] + 1)
    await asyncio.sleep(0.1)
    assert woken["west"] == before["west"]
    await listener.close()


async def test_many_halls_share_one_listening_connection(pool: asyncpg.Pool) -> None:
    listener = NotifyListener(pool)
    for hall in range(10):
        listener.subscribe(f"hall-{hall}", lambda: None)
    await asyncio.sleep(0.3)
    assert await listening(pool) == 1
    await listener.close()


async def test_a_lost_listening_connection_comes_back_and_wakes_everyone(
    pool: asyncpg.Pool,
) -> None:
    woken: Counter[str] = Counter()
    listener = NotifyListener(pool)
    listener.subscribe("east", lambda: woken.update(["east"]))
    await until(lambda: woken["east"] >= 2)
    cut = await pool.fetchval(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE query LIKE 'LISTEN%' AND datname = current_database()")
    assert cut == 1
    await until(lambda: woken["east"] >= 3, timeout=10)  # what was noted meanwhile is read
    await pool.execute("SELECT pg_notify('hall_notify', 'east')")
    await until(lambda: woken["east"] >= 4)
    await listener.close()


async def test_the_last_hall_to_leave_gives_the_connection_back(pool: asyncpg.Pool) -> None:
    listener = NotifyListener(pool)
    leave_east = listener.subscribe("east", lambda: None)
    leave_west = listener.subscribe("west", lambda: None)
    await asyncio.sleep(0.2)
    leave_east()
    await asyncio.sleep(0.1)
    assert await listening(pool) == 1
    leave_west()
    await asyncio.sleep(0.2)
    assert await listening(pool) == 0
