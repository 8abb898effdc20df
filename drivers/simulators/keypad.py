"""A simulated 433 MHz keypad receiver on the far end of a pty.

It writes the frames the ITEAD RF Bridge receiver sends when it hears a remote
(``AA A4`` Tsyn Tlow Thigh code ``55``, see ``drivers.keypad`` for the sources), built
here from the protocol description and not with the driver's code, and counts the
``AA A0 55`` acknowledgements the host sends back. A held key is several identical
frames in a row, as the remote repeats its code while the button is down.
"""

from __future__ import annotations

import asyncio
import os
import random
from typing import Final

from drivers.simulators.line import LineReader

START: Final = 0xAA
END: Final = 0x55
RF_IN: Final = 0xA4
ACK_FRAME: Final = bytes((0xAA, 0xA0, 0x55))

SYNC_US: Final = 0x24E0
LOW_US: Final = 0x0140
HIGH_US: Final = 0x0384
"""The pulse times of the byte example in Portisch/RF-Bridge-EFM8BB1's README."""


def rf_frame(
    address: int,
    key: int,
    *,
    sync: int = SYNC_US,
    low: int = LOW_US,
    high: int = HIGH_US,
    action: int = RF_IN,
) -> bytes:
    """The receiver's report of EV1527 remote ``address`` (20 bits) sending ``key`` (4 bits)."""
    if not 0 <= address < 1 << 20:
        raise ValueError("an EV1527 address has 20 bits")
    if not 0 <= key < 16:
        raise ValueError("an EV1527 key code has 4 bits")
    code = address << 4 | key
    return (
        bytes((START, action))
        + sync.to_bytes(2, "big")
        + low.to_bytes(2, "big")
        + high.to_bytes(2, "big")
        + code.to_bytes(3, "big")
        + bytes((END,))
    )


class KeypadSimulator(LineReader):
    """Presses keys of any number of keypads into ``fd``; ``acks`` counts the host's ACKs."""

    def __init__(self, fd: int, *, seed: int = 0) -> None:
        super().__init__(fd)
        self.acks = 0
        self._from_host = bytearray()
        self._random = random.Random(seed)

    def on_bytes(self, data: bytes) -> None:
        self._from_host += data
        while (at := self._from_host.find(ACK_FRAME)) >= 0:
            self.acks += 1
            del self._from_host[: at + len(ACK_FRAME)]

    def write(self, data: bytes) -> None:
        """Bytes onto the line, as they are."""
        view = memoryview(data)
        while view:
            written = os.write(self.fd, view)
            view = view[written:]

    async def press(
        self, address: int | str, key: int, repeats: int = 3, *, interval: float = 0.02
    ) -> None:
        """One press: the code ``repeats`` times, ``interval`` seconds apart, as a
        remote repeats it while the key is held. ``address`` may be hex text."""
        number = int(address, 16) if isinstance(address, str) else address
        frame = rf_frame(number, key)
        for index in range(repeats):
            if index:
                await asyncio.sleep(interval)
            self.write(frame)

    def noise(self, length: int = 32, *, without: bytes = b"\xaa") -> bytes:
        """Random bytes onto the line (none of ``without``, so they cannot start a
        frame); returns what was written."""
        allowed = [b for b in range(256) if b not in without]
        data = bytes(self._random.choice(allowed) for _ in range(length))
        self.write(data)
        return data

    async def wait_for_acks(self, count: int, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            while self.acks < count:
                await asyncio.sleep(0.005)
