"""A simulated LED strip on the far end of a pty: it decodes what arrives the way the
sign would and keeps what it would show now.

Its decoders are written from the protocol descriptions cited in ``drivers.led`` (the
Alpha Sign Communications Protocol, 9708-8061F; CR LF text lines), not from the
driver's encoder, so a test that round-trips through them checks the driver against
the protocol rather than against itself. Like a real sign, the Alpha decoder drops a
packet with a parity error or a checksum that does not match, restarts on every SOH,
and ignores packets for other addresses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from drivers.simulators.line import LineReader

log = logging.getLogger(__name__)

SOH: Final = 0x01
STX: Final = 0x02
ETX: Final = 0x03
EOT: Final = 0x04
ESC: Final = 0x1B
MAX_PACKET: Final = 4096
"""Longer than any sign's serial buffer: a packet that runs on is noise."""

_HEX = b"0123456789ABCDEF"


@dataclass(frozen=True)
class AlphaPacket:
    type_code: str
    address: str
    commands: tuple[bytes, ...]
    """Each command from its command code to the byte before ETX (or EOT)."""


@dataclass
class AlphaDecoder:
    """Bytes from the line in, whole valid packets out; counts what it had to drop."""

    parity: bool = True
    """Whether bytes carry 7E1 parity in bit 7 (the driver's 8N1 port sends it so)."""
    rejected: int = 0
    _packet: bytearray | None = None
    _parity_error: bool = False

    def feed(self, data: bytes) -> list[AlphaPacket]:
        packets: list[AlphaPacket] = []
        for raw in data:
            byte = raw
            bad_parity = False
            if self.parity:
                byte = raw & 0x7F
                bad_parity = (raw >> 7) != (byte.bit_count() & 1)
            elif raw > 0x7F:
                bad_parity = True
            if byte == SOH:
                if self._packet is not None:
                    self._reject("a new SOH before EOT")
                self._packet = bytearray()
                self._parity_error = bad_parity
                continue
            if self._packet is None:
                continue
            self._parity_error |= bad_parity
            if byte == EOT:
                body, self._packet = bytes(self._packet), None
                packet = self._parse(body)
                if packet is not None:
                    packets.append(packet)
                continue
            self._packet.append(byte)
            if len(self._packet) > MAX_PACKET:
                self._packet = None
                self._reject(f"a packet over {MAX_PACKET} bytes")
        return packets

    def _reject(self, why: str) -> None:
        self.rejected += 1
        log.warning("LED sign dropped a packet: %s", why)

    def _parse(self, body: bytes) -> AlphaPacket | None:
        if self._parity_error:
            self._reject("parity error")
            return None
        if len(body) < 4 or body[3] != STX:
            self._reject("no type code, address and STX after SOH")
            return None
        header = body[:3].decode("ascii")
        commands: list[bytes] = []
        rest = body[3:]
        while rest:
            if rest[0] != STX:
                self._reject("bytes between commands")
                return None
            end = rest.find(ETX)
            if end < 0:
                commands.append(rest[1:])
                break
            digits = rest[end + 1 : end + 5]
            if len(digits) == 4 and all(d in _HEX for d in digits):
                if int(digits, 16) != sum(rest[: end + 1]) & 0xFFFF:
                    self._reject(f"checksum {digits.decode()} does not match")
                    return None
                commands.append(rest[1:end])
                rest = rest[end + 5 :]
            else:
                commands.append(rest[1:end])
                rest = rest[end + 1 :]
        if not commands:
            self._reject("a packet without a command")
            return None
        return AlphaPacket(header[0], header[1:], tuple(commands))


def write_text_lines(command: bytes) -> tuple[str, list[str]] | None:
    """The label and lines of a Write TEXT command ('A'), or None for another command.

    Each ``ESC position mode`` begins a line; other control codes (colours, fonts,
    speeds) are left out of what is shown.
    """
    if len(command) < 2 or command[0] != ord("A"):
        return None
    label = chr(command[1])
    lines: list[str] = []
    text = command[2:]
    current: bytearray | None = None
    index = 0
    while index < len(text):
        byte = text[index]
        if byte == ESC:
            if current is not None:
                lines.append(current.decode("ascii"))
            current = bytearray()
            mode_at = index + 2
            skip = 3 + (mode_at < len(text) and text[mode_at] == ord("n"))
            index += skip
            continue
        if current is None:
            current = bytearray()
        if 0x20 <= byte <= 0x7E:
            current.append(byte)
        index += 1
    if current is not None:
        lines.append(current.decode("ascii"))
    return label, lines


@dataclass
class TextLineDecoder:
    """CR LF terminated lines in ``encoding``; bytes it cannot decode show as U+FFFD."""

    encoding: str = "gb18030"
    _partial: bytearray = field(default_factory=bytearray)
    max_line: int = 1024

    def feed(self, data: bytes) -> list[str]:
        self._partial += data
        lines: list[str] = []
        while (end := self._partial.find(b"\r\n")) >= 0:
            raw = bytes(self._partial[:end])
            del self._partial[: end + 2]
            lines.append(raw.decode(self.encoding, errors="replace"))
        if len(self._partial) > self.max_line:
            log.warning("LED module dropped %d bytes without CR LF", len(self._partial))
            self._partial.clear()
        return lines


class LedSimulator(LineReader):
    """What a strip on ``fd`` shows now (``lines``), updated as frames arrive.

    ``address`` is the Alpha sign's own address: it takes packets for it and for
    ``00``. ``rows`` is how many lines a text module shows: the last ones it received.
    """

    def __init__(
        self,
        fd: int,
        *,
        protocol: Literal["alpha", "text"] = "text",
        address: str = "00",
        encoding: str = "gb18030",
        rows: int = 2,
    ) -> None:
        super().__init__(fd)
        self.protocol = protocol
        self.address = address
        self.rows = rows
        self.lines: list[str] = []
        self.files: dict[str, list[str]] = {}
        self.updates = 0
        self.received = bytearray()
        self._alpha = AlphaDecoder()
        self._text = TextLineDecoder(encoding)
        self._changed = asyncio.Event()

    @property
    def rejected(self) -> int:
        """Packets dropped for a bad checksum, parity or shape."""
        return self._alpha.rejected

    def on_bytes(self, data: bytes) -> None:
        self.feed(data)

    def feed(self, data: bytes) -> None:
        """Take bytes as if they came down the line."""
        self.received += data
        if self.protocol == "text":
            new = self._text.feed(data)
            if new:
                self.lines = [*self.lines, *new][-self.rows :]
                self._updated()
            return
        for packet in self._alpha.feed(data):
            if packet.address not in ("00", self.address):
                continue
            for command in packet.commands:
                written = write_text_lines(command)
                if written is not None:
                    label, lines = written
                    self.files[label] = lines
                    self.lines = lines
                    self._updated()

    def _updated(self) -> None:
        self.updates += 1
        self._changed.set()

    async def wait_for(self, check: Callable[[LedSimulator], bool], timeout: float = 2.0) -> None:
        """Until ``check(self)`` holds; TimeoutError after ``timeout`` seconds."""
        async with asyncio.timeout(timeout):
            while not check(self):
                self._changed.clear()
                await self._changed.wait()
