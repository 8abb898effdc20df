"""Keeping a piece of hardware in use while it comes and goes.

A USB-serial reader is pulled out, a printer is switched off for a new roll, a camera
is unplugged to be moved: the agent must carry on with the rest and take the device
back the moment it reappears. ``keep_using`` runs "open, use until it fails, close"
forever, waiting longer between attempts while the device stays away (so a missing
device is not polled hundreds of times a second) and telling the caller each time the
device appears or disappears, which the agent publishes as health.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from drivers.errors import DeviceUnavailable, DriverError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    first: float = 0.5
    longest: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def delays(self, rng: random.Random) -> _Delays:
        return _Delays(self, rng)


class _Delays:
    def __init__(self, backoff: Backoff, rng: random.Random) -> None:
        self._backoff = backoff
        self._rng = rng
        self._next = backoff.first

    def reset(self) -> None:
        self._next = self._backoff.first

    def next(self) -> float:
        delay = self._next
        self._next = min(delay * self._backoff.factor, self._backoff.longest)
        spread = self._backoff.jitter
        return delay * self._rng.uniform(1 - spread, 1 + spread)


class Closable(Protocol):
    async def close(self) -> None: ...


D = TypeVar("D", bound=Closable)


async def keep_using(
    name: str,
    open_device: Callable[[], Awaitable[D]],
    use: Callable[[D], Awaitable[None]],
    on_change: Callable[[bool, str], Awaitable[None]],
    *,
    backoff: Backoff = Backoff(),
    rng: random.Random | None = None,
) -> None:
    """Open the device, ``use`` it until it fails, close it; again, forever.

    ``on_change`` hears ``(True, "")`` each time the device opens and ``(False, why)``
    once per outage. ``DeviceUnavailable`` (unplugged, silent) is an outage; so is any
    other ``DriverError`` (a device answering nonsense), which is also logged, since a
    confused device is better reopened than trusted. ``use`` returning normally lets the
    device go on purpose: it is reopened at once.
    """
    rng = rng or random.Random(name)
    delays = backoff.delays(rng)
    up: bool | None = None
    while True:
        why = ""
        try:
            device = await open_device()
        except DriverError as error:
            why = str(error)
        else:
            try:
                up = True
                delays.reset()
                await on_change(True, "")
                await use(device)
            except DeviceUnavailable as error:
                why = str(error)
            except DriverError as error:
                why = f"device error: {error}"
                log.warning("%s: %s; reopening it", name, error)
            finally:
                await device.close()
            if not why:
                continue
        if up is not False:
            log.warning("%s: unavailable (%s)", name, why)
            await on_change(False, why)
        up = False
        delay = delays.next()
        log.debug("%s: trying again in %.1f s", name, delay)
        await asyncio.sleep(delay)
