"""Stopping a task whose first cancellation got lost (Python 3.11's wait_for in
aiomqtt can swallow one) still stops it."""

from __future__ import annotations

import asyncio

from devices.client import stop_task


async def swallows_one_cancellation(cancelled: list[int]) -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        cancelled.append(1)
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
    await asyncio.sleep(3600)


async def test_a_task_that_swallowed_its_cancellation_is_cancelled_again() -> None:
    cancelled: list[int] = []
    task = asyncio.create_task(swallows_one_cancellation(cancelled))
    await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await stop_task(task, every=0.05)
    assert task.cancelled()
    assert cancelled == [1]


async def test_a_task_that_stops_at_once_is_cancelled_once() -> None:
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    await stop_task(task, every=10)
    assert task.cancelled()
