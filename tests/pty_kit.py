"""Serial lines for driver tests: a pty whose one end the simulator holds while the driver
opens the other by a stable path, just as it opens /dev/ttyUSB0 in a hall.

``path`` is a symlink to the pty's device, as udev keeps /dev/serial/by-id links: pulling
the adapter out removes the device, plugging it back in makes a new one under the same
link. ``unplug`` and ``replug`` do exactly that, so a driver that survives them survives
a real USB-serial adapter being pulled and reinserted.
"""

from __future__ import annotations

import os
import tty
from pathlib import Path


class SerialLine:
    """``fd`` is the simulator's end (the pty's master); ``path`` the driver's."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._link = path
        self.fd = -1
        self._device_fd = -1
        self.replug()

    @property
    def plugged(self) -> bool:
        return self.fd >= 0

    def replug(self) -> None:
        """Plug a new device in under the same path (a no-op while plugged)."""
        if self.plugged:
            return
        master, device = os.openpty()
        tty.setraw(master)
        tty.setraw(device)
        self.fd, self._device_fd = master, device
        self._link.unlink(missing_ok=True)
        self._link.symlink_to(os.ttyname(device))

    def unplug(self) -> None:
        """The device is gone: the driver's open port errors and the path disappears."""
        for fd in (self.fd, self._device_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self._device_fd = -1
        self._link.unlink(missing_ok=True)

    close = unplug


def serial_line(directory: Path, name: str = "ttySIM0") -> SerialLine:
    return SerialLine(directory / name)
