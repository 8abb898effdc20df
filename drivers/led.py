"""LED strips above windows and LED boards in the hall: the calls, pauses and queues of
D8/D9 where citizens look for them.

Two wire protocols, chosen per strip:

``alpha`` — the Alpha Sign Communications Protocol of Adaptive Micro Systems (Alpha
American), document 9708-8061F, revision F of 2006-03-10 ("M-Protocol"): the publicly
documented protocol of Alpha, BetaBrite and compatible serial LED signs. One packet::

    NUL x5 | SOH | type code | address (2 hex) | STX | 'A' | label | ESC pos mode text ...
        | ETX | checksum (4 hex) | EOT

``'A'`` writes a TEXT file; each ``ESC position mode`` starts one line (a page of the
message). The checksum is the 16-bit sum of every byte from STX to ETX inclusive, in
four upper-case hex digits; a sign drops a packet whose checksum does not match. Line
settings are 7 data bits, even parity, 1 stop bit (7E1), 9600 baud.

Where the byte values come from: the document's own table of contents (a copy on
Scribd) and two independent open-source implementations that agree on the packet
layout, the command, mode and type codes and the checksum — msparks/alphasign
(``packet.py``, ``constants.py``, ``positions.py``; it cites the document's page
numbers) and lancereinsmith/alphasignpy (``packet.py``, ``protocol.py`` and its
``docs/protocol-reference.md``). They disagree only on the display-position table;
this module follows msparks/alphasign (middle line 20H, top 22H, bottom 26H, fill 30H,
left 31H, right 32H), which cites section 7.10 of the document. Not verified here: how a
given sign model lays out several ``ESC`` lines (a one-line sign shows them one after
the other; a two-line sign may pair them), and the file size a sign allots to label
``A`` — both depend on the sign's memory configuration, which this driver leaves as the
factory set it.

Alpha signs show 7-bit ASCII only, so Chinese text goes out as pinyin (``to_ascii``).
The port is opened 8N1 like every serial device of the hall (``drivers.serial_port``);
``seven_e1`` puts each byte's even-parity bit in bit 7, which makes the 8N1 bit stream
identical, bit for bit, to the 7E1 stream the sign expects.

``text`` — the plain line protocol of cheap serial LED modules sold for queue systems:
each line in the module's character set (GB2312 on most, GB18030 or UTF-8 on some),
ended by CR LF. There is no checksum and no addressing; the module shows the lines it
was sent.

Not built: the Onbon BX-5K/6K controller protocol (``doc.onbonbx.com/zh/k/potocol``) —
only its introduction was readable here, not its frame and CRC definitions.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
from collections.abc import Sequence
from typing import Final, Literal, TypeAlias

import serial
from pypinyin import lazy_pinyin

from devices.messages import BoardDisplay, PositionView, WindowDisplay
from drivers.errors import DeviceUnavailable
from drivers.serial_port import open_serial

log = logging.getLogger(__name__)

LedProtocol: TypeAlias = Literal["alpha", "text"]

# --------------------------------------------------------------- Alpha bytes

NUL: Final = 0x00
SOH: Final = 0x01
STX: Final = 0x02
ETX: Final = 0x03
EOT: Final = 0x04
ESC: Final = 0x1B

WRITE_TEXT: Final = "A"
"""Command code: write a TEXT file."""
TYPE_ALL_SIGNS: Final = "Z"
"""Type code every sign answers to."""
BROADCAST: Final = "00"
"""The address every sign answers to."""
WAKE_NULS: Final = 5
"""NULs before SOH: the sign measures the baud rate on them."""

MIDDLE_LINE: Final = " "
TOP_LINE: Final = '"'
BOTTOM_LINE: Final = "&"
FILL: Final = "0"
LEFT: Final = "1"
RIGHT: Final = "2"
POSITIONS: Final = frozenset({MIDDLE_LINE, TOP_LINE, BOTTOM_LINE, FILL, LEFT, RIGHT})

ROTATE: Final = "a"
"""Scroll right to left: long lines (pinyin is long) stay readable."""
HOLD: Final = "b"
FLASH: Final = "c"
MODES: Final = frozenset("abcefghijklmopqrst")
"""Mode codes without a special specifier ('n', special, takes one more byte: not used)."""

_HEX = frozenset("0123456789ABCDEF")

# The full-width punctuation of the hall's texts, for signs that have only ASCII.
_ASCII_PUNCTUATION = str.maketrans(
    {
        "，": ", ",
        "：": ": ",
        "；": "; ",
        "（": "(",
        "）": ")",
        "！": "!",
        "？": "?",
        "、": ", ",
        "。": ". ",
        "→": "->",
        "×": "x",
        "\u3000": " ",
    }
)


def alpha_checksum(body: bytes) -> bytes:
    """The four hex digits that follow ETX; ``body`` runs from STX to ETX inclusive."""
    return f"{sum(body) & 0xFFFF:04X}".encode("ascii")


def _check_printable(what: str, text: str) -> None:
    bad = [ch for ch in text if not 0x20 <= ord(ch) <= 0x7E]
    if bad:
        raise ValueError(f"{what} has characters an Alpha sign cannot show: {bad[:5]!r}")


def encode_alpha(
    lines: Sequence[str],
    *,
    address: str = BROADCAST,
    type_code: str = TYPE_ALL_SIGNS,
    label: str = "A",
    position: str = FILL,
    mode: str = ROTATE,
    checksum: bool = True,
) -> bytes:
    """One Write TEXT packet (7-bit values; ``seven_e1`` adds the parity for the wire).

    Lines must be printable ASCII (``to_ascii`` makes them so). An empty ``lines``
    writes an empty file, which blanks the sign.
    """
    if len(address) != 2 or not set(address) <= _HEX:
        raise ValueError(f"an Alpha address is two upper-case hex digits, not {address!r}")
    if len(type_code) != 1 or not 0x20 <= ord(type_code) <= 0x7E:
        raise ValueError(f"an Alpha type code is one printable character, not {type_code!r}")
    if len(label) != 1 or not 0x20 <= ord(label) <= 0x7E or label == "?":
        raise ValueError(f"an Alpha file label is one printable character but '?', not {label!r}")
    if position not in POSITIONS:
        raise ValueError(f"unknown Alpha display position {position!r}")
    if mode not in MODES:
        raise ValueError(f"unknown or unsupported Alpha mode code {mode!r}")
    text = bytearray()
    for line in lines:
        _check_printable("line", line)
        text += bytes((ESC,)) + (position + mode + line).encode("ascii")
    command = bytes((STX,)) + (WRITE_TEXT + label).encode("ascii") + bytes(text)
    head = bytes((NUL,) * WAKE_NULS) + bytes((SOH,)) + (type_code + address).encode("ascii")
    if not checksum:
        return head + command + bytes((EOT,))
    body = command + bytes((ETX,))
    return head + body + alpha_checksum(body) + bytes((EOT,))


def seven_e1(data: bytes) -> bytes:
    """7-bit bytes with their even-parity bit in bit 7: 7E1 sent over an 8N1 port."""
    if any(byte > 0x7F for byte in data):
        raise ValueError("7E1 carries 7-bit values only")
    return bytes(byte | ((byte.bit_count() & 1) << 7) for byte in data)


def to_ascii(text: str) -> str:
    """Chinese as space-separated pinyin, full-width punctuation as ASCII, anything
    else an Alpha sign cannot show as '?'."""
    spaced: list[str] = []
    for piece in lazy_pinyin(text.translate(_ASCII_PUNCTUATION)):
        if spaced and spaced[-1][-1:].isalnum() and piece[:1].isalnum():
            spaced.append(" ")
        spaced.append(piece)
    flat = "".join(spaced).replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return "".join(ch if 0x20 <= ord(ch) <= 0x7E else "?" for ch in flat)


# ---------------------------------------------------------------- text lines

CRLF: Final = b"\r\n"


def encode_text(lines: Sequence[str], *, encoding: str = "gb18030") -> bytes:
    """Each line in ``encoding``, ended by CR LF; an empty ``lines`` sends one blank line
    so the module clears. A character the encoding lacks (a rare name in GB2312) goes
    out as '?' rather than failing the whole screen."""
    flat = [line.replace("\r", " ").replace("\n", " ") for line in lines] or [""]
    return b"".join(line.encode(encoding, errors="replace") + CRLF for line in flat)


# ------------------------------------------------------------------ rendering

IDLE_BOARD: Final = "暂无叫号"


def _short_name(position: PositionView) -> str:
    """On a strip "12A号窗口 发票" is "12A号窗口": the number is what people look for."""
    return position.name.split()[0] if position.name.split() else position.window


def _position_line(position: PositionView) -> str:
    short = _short_name(position)
    if position.state == "calling" and position.number:
        return f"请{position.number}号到{short}"
    if position.state == "serving" and position.number:
        return f"{position.number}号 正在办理"
    if position.state == "paused":
        message = position.message or ""
        if not message:
            return "暂停服务"
        return message if "暂停" in message else f"暂停服务：{message}"
    if position.state == "not_logged_in":
        return f"{short} 暂停服务"
    if position.state == "closed":
        return f"{short} 已停止服务"
    return position.name or short


def window_lines(display: WindowDisplay) -> list[str]:
    """One line per calling position: "请A013号到4号窗口", "暂停服务：…", or the name."""
    return [_position_line(position) for position in display.positions]


def board_lines(display: BoardDisplay, *, max_lines: int) -> list[str]:
    """Calls now first, then recent calls, then the queues, as far as the board has
    lines: a citizen looks for their number, so numbers never give way to figures."""
    if max_lines < 1:
        raise ValueError("a board has at least one line")
    lines: list[str] = []
    shown: set[tuple[str, str]] = set()
    for call in [*display.calling, *display.recent]:
        key = (call.number, call.window_name)
        if key not in shown:
            shown.add(key)
            lines.append(f"{call.number} → {call.window_name}")
    lines.extend(f"{queue.name} 等候{queue.waiting}人" for queue in display.waiting)
    return lines[:max_lines] or [IDLE_BOARD]


# --------------------------------------------------------------------- driver


class LedStrip:
    """One strip or board on a serial line (RS-232/RS-485 converter, USB-serial, or
    ``socket://`` for a serial server).

    ``address`` is the Alpha sign address (two hex digits, ``00`` for every sign on
    the line); the text protocol has none. ``encoding`` is the text module's character
    set. ``show`` raises ``DeviceUnavailable`` when the port is gone; the agent reopens.
    """

    def __init__(
        self,
        url: str,
        *,
        protocol: LedProtocol = "text",
        address: str = BROADCAST,
        encoding: str = "gb18030",
        baudrate: int = 9600,
        mode: str = ROTATE,
        position: str = FILL,
        label: str = "A",
        write_timeout: float = 2.0,
    ) -> None:
        if protocol not in ("alpha", "text"):
            raise ValueError(f"unknown LED protocol {protocol!r}")
        codecs.lookup(encoding)
        self.url = url
        self.protocol: LedProtocol = protocol
        self.address = address.upper()
        self.encoding = encoding
        self.baudrate = baudrate
        self.mode = mode
        self.position = position
        self.label = label
        self.write_timeout = write_timeout
        self._writer: asyncio.StreamWriter | None = None
        self.encode([])

    def encode(self, lines: Sequence[str]) -> bytes:
        """The bytes ``show`` writes for ``lines``."""
        if self.protocol == "text":
            return encode_text(lines, encoding=self.encoding)
        packet = encode_alpha(
            [to_ascii(line) for line in lines],
            address=self.address,
            label=self.label,
            position=self.position,
            mode=self.mode,
        )
        return seven_e1(packet)

    @property
    def is_open(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def open(self) -> None:
        if self.is_open:
            return
        await self.close()
        _, self._writer = await open_serial(self.url, self.baudrate)

    async def close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), self.write_timeout)
        except (OSError, serial.SerialException, TimeoutError):
            log.debug("LED strip %s closed with an error", self.url, exc_info=True)

    async def show(self, lines: Sequence[str]) -> None:
        """Replace what the strip shows with ``lines``."""
        frame = self.encode(lines)
        writer = self._writer
        if writer is None or writer.is_closing():
            raise DeviceUnavailable(f"LED strip {self.url} is not open")
        try:
            writer.write(frame)
            await asyncio.wait_for(writer.drain(), self.write_timeout)
        except (OSError, serial.SerialException, TimeoutError) as error:
            await self.close()
            raise DeviceUnavailable(f"LED strip {self.url} is gone: {error}") from error
        if writer.is_closing():
            # A failed write closes the transport without drain() saying so.
            await self.close()
            raise DeviceUnavailable(f"LED strip {self.url} is gone: the write failed")
