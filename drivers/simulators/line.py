"""The simulator's end of a serial line, read on the event loop as bytes arrive."""

from __future__ import annotations

import asyncio
import os


class LineReader:
    """Reads ``fd`` (a pty's far end) while started and hands each chunk to ``received``;
    a line that errors (the pty unplugged) stops itself."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._reading = False

    def start(self) -> None:
        asyncio.get_running_loop().add_reader(self.fd, self._on_readable)
        self._reading = True

    def stop(self) -> None:
        if self._reading:
            self._reading = False
            asyncio.get_running_loop().remove_reader(self.fd)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except OSError:
            self.stop()
            return
        self.on_bytes(data)

    def on_bytes(self, data: bytes) -> None:
        """What the device does with bytes from the driver."""
