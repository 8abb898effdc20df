"""Opening a serial line as asyncio streams, whatever it is plugged in as.

``url`` is what pyserial's ``serial_for_url`` takes: a device path (``/dev/ttyUSB0``, a
pty from the tests), ``socket://host:port`` for a serial-over-TCP converter, or
``loop://``. A port that cannot be opened raises ``DeviceUnavailable``, so every
driver reports an unplugged device the same way.
"""

from __future__ import annotations

import asyncio

import serial
import serial_asyncio_fast

from drivers.errors import DeviceUnavailable


async def open_serial(
    url: str, baudrate: int = 115200, *, limit: int = 64 * 1024
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """8N1 at ``baudrate``, no flow control: what the hall's serial devices use."""
    try:
        return await serial_asyncio_fast.open_serial_connection(
            url=url, baudrate=baudrate, bytesize=8, parity="N", stopbits=1, limit=limit
        )
    except (OSError, serial.SerialException, ValueError) as error:
        raise DeviceUnavailable(f"cannot open serial port {url}: {error}") from error
