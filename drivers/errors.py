"""What drivers raise, so the edge agent can tell a device that went away (reopen it
later) from one that answered something it cannot use (log it and carry on)."""

from __future__ import annotations


class DriverError(Exception):
    """A device answered, but not with what the driver needed."""


class DeviceUnavailable(DriverError):
    """The device cannot be reached: unplugged, powered off, port gone, or not answering
    within its timeout. The agent reports it offline and reopens it with backoff."""


class ProtocolError(DriverError):
    """A frame that breaks the protocol (bad checksum, impossible length, unknown status).
    Parsers skip such bytes and resynchronise; this is raised only where a caller asked
    for one answer and got garbage instead."""
