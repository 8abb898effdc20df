"""Hardware that comes and goes: opened again with backoff, reported once per outage."""

from __future__ import annotations

import asyncio
import contextlib
import itertools

from drivers.errors import DeviceUnavailable, DriverError
from drivers.supervise import Backoff, keep_using

FAST = Backoff(first=0.01, longest=0.04, jitter=0.0)


class Fake:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


async def run_for(seconds: float, *args: object, **kwargs: object) -> None:
    task = asyncio.create_task(keep_using(*args, **kwargs))  # type: ignore[arg-type]
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_an_absent_device_is_reported_once_and_retried_with_growing_delays() -> None:
    attempts: list[float] = []
    changes: list[tuple[bool, str]] = []
    loop = asyncio.get_running_loop()

    async def absent() -> Fake:
        attempts.append(loop.time())
        raise DeviceUnavailable("no such port")

    async def never_used(device: Fake) -> None:
        raise AssertionError("an absent device is never used")

    async def on_change(up: bool, why: str) -> None:
        changes.append((up, why))

    await run_for(0.25, "reader", absent, never_used, on_change, backoff=FAST)
    assert changes == [(False, "no such port")]
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[0] < gaps[2]
    assert max(gaps) < 0.08


async def test_a_device_that_goes_away_is_closed_reported_and_reopened() -> None:
    opened: list[Fake] = []
    changes: list[bool] = []

    async def open_device() -> Fake:
        opened.append(Fake())
        return opened[-1]

    async def use(device: Fake) -> None:
        if len(opened) == 1:
            raise DeviceUnavailable("unplugged")
        await asyncio.sleep(10)

    async def on_change(up: bool, why: str) -> None:
        changes.append(up)

    await run_for(0.1, "strip", open_device, use, on_change, backoff=FAST)
    assert len(opened) == 2
    assert opened[0].closed
    assert changes == [True, False, True]


async def test_a_device_answering_nonsense_is_reopened_not_trusted() -> None:
    opened: list[Fake] = []

    async def open_device() -> Fake:
        opened.append(Fake())
        return opened[-1]

    async def use(device: Fake) -> None:
        if len(opened) < 3:
            raise DriverError("checksum after checksum wrong")
        await asyncio.sleep(10)

    async def on_change(up: bool, why: str) -> None:
        pass

    await run_for(0.15, "printer", open_device, use, on_change, backoff=FAST)
    assert len(opened) == 3
    assert all(device.closed for device in opened[:2])
