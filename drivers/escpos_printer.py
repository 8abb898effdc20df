"""The kiosk's ticket printer: lays out a ticket (Q3) and reports paper and faults (Q14).

Protocol: Epson ESC/POS as in the *ESC/POS Command Reference* (DLE EOT n real-time status,
GS ! character size, GS ( k QR code functions 165/167/169/180/181, GS k barcodes, GS V cut)
and the Chinese-printer extension FS & / FS . (Chinese character mode on/off), in which
every byte from 0x81 starts a GB18030 character printed full width. The status bit
layouts are Epson's, which Citizen, Bixolon and CBM printers repeat in their manuals:
bits 1 and 4 are always on, bits 0 and 7 always off; n=1 bit 3 offline; n=2 bit 2 cover
open, bit 3 feeding by the FEED button, bit 5 stopped by paper end, bit 6 error; n=3
bit 3 autocutter, bit 5 unrecoverable, bit 6 auto-recoverable error; n=4 bits 2-3 near
end, bits 5-6 paper out (some printers set only one bit of each pair, so either counts).

Bytes are produced with python-escpos 3.1's ``Dummy`` printer (``hw``, ``set``,
``qr(native=True)``, ``cut``). Text does not go through its magic encoder, which picks a
code page by trial and knows nothing of GB18030 or FS &: it is written raw, in GB18030,
with Chinese mode switched on at the start of the ticket. Characters outside GBK (the
four-byte GB18030 range, e.g. 䶮 or 𠀀) need a printer with a GB18030 font; GBK-only
printers print a blank or a box for them.

Transports: ``tcp://host:9100`` (asyncio streams), a serial device path or
``serial:///dev/ttyUSB0?baudrate=19200`` (``drivers.serial_port.open_serial``), and
``usb://VID:PID`` (python-escpos ``Usb`` over pyusb, run in a worker thread; not tested
here, there is no USB printer on the build machine).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

from escpos.constants import QR_ECLEVEL_M, QR_MODEL_2
from escpos.printer import Dummy

from devices.messages import Health, TicketPrint
from drivers.errors import DeviceUnavailable, DriverError, ProtocolError
from drivers.serial_port import open_serial

log = logging.getLogger(__name__)
T = TypeVar("T")

Paper = Literal["ok", "near_end", "out"]
Cover = Literal["closed", "open"]
Symbol = Literal["qr", "code128"]

DLE_EOT = b"\x10\x04"
CHINESE_ON = b"\x1c&"
DEFAULT_TCP_PORT = 9100
DEFAULT_BAUDRATE = 9600
"""Epson's and most Chinese kiosk printers' factory setting; the URL's ``baudrate`` overrides it."""

PAPER_OUT_REASON = "打印纸已用完，请到其他取号机取号"
COVER_OPEN_REASON = "打印机纸仓盖未关好，请到其他取号机取号"
FAULT_REASON = "取号打印机故障，请到其他取号机取号"

_BLOCKING_ERRORS = frozenset({"cutter", "unrecoverable", "auto_recoverable", "error"})
_PAPER_RANK: dict[Paper, int] = {"ok": 0, "near_end": 1, "out": 2}


# ------------------------------------------------------------------------- status


@dataclass(frozen=True)
class PrinterStatus:
    """What the four DLE EOT replies say together; one reply alone fills only its part."""

    online: bool = True
    paper: Paper = "ok"
    cover: Cover = "closed"
    errors: tuple[str, ...] = ()

    def health(self) -> Health:
        """``offline`` joins the errors: the bus's Health has no field of its own for it."""
        errors = list(self.errors)
        if not self.online and "offline" not in errors:
            errors.append("offline")
        return Health(paper=self.paper, cover=self.cover, errors=errors)

    def refusal(self) -> str | None:
        """Why no ticket can be printed now, in words the kiosk shows the citizen."""
        if self.paper == "out":
            return PAPER_OUT_REASON
        if self.cover == "open":
            return COVER_OPEN_REASON
        if not self.online or _BLOCKING_ERRORS.intersection(self.errors):
            return FAULT_REASON
        return None


class PrinterNotReady(DriverError):
    """The printer answered, but cannot print: ``str()`` is the citizen-facing reason."""

    def __init__(self, reason: str, status: PrinterStatus) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def check_status_byte(n: int, byte: int) -> None:
    """Reject a reply whose fixed bits are wrong: it is not a status byte, the stream is off."""
    if n not in (1, 2, 3, 4):
        raise ValueError(f"DLE EOT n is 1 to 4, not {n}")
    if not 0 <= byte <= 0xFF:
        raise ProtocolError(f"DLE EOT {n} reply {byte} is not a byte")
    if byte & 0x93 != 0x12:
        raise ProtocolError(
            f"DLE EOT {n} reply 0x{byte:02X} breaks the fixed bits (1 and 4 on, 0 and 7 off)"
        )


def _bits(byte: int, names: Mapping[int, str]) -> tuple[str, ...]:
    return tuple(name for bit, name in names.items() if byte & (1 << bit))


def parse_status(n: int, byte: int) -> PrinterStatus:
    """What the reply to DLE EOT ``n`` says; the parts it does not cover stay at their best."""
    check_status_byte(n, byte)
    if n == 1:
        return PrinterStatus(
            online=not byte & 0x08,
            errors=_bits(byte, {5: "waiting_recovery", 6: "feed_button"}),
        )
    if n == 2:
        return PrinterStatus(
            paper="out" if byte & 0x20 else "ok",
            cover="open" if byte & 0x04 else "closed",
            errors=_bits(byte, {3: "feed_button", 6: "error"}),
        )
    if n == 3:
        return PrinterStatus(
            errors=_bits(byte, {3: "cutter", 5: "unrecoverable", 6: "auto_recoverable"})
        )
    paper: Paper = "out" if byte & 0x60 else "near_end" if byte & 0x0C else "ok"
    return PrinterStatus(paper=paper)


def merge_statuses(parts: Iterable[PrinterStatus]) -> PrinterStatus:
    """The worst of each field. The generic ``error`` of n=2 goes when n=3 names the cause."""
    online = True
    paper: Paper = "ok"
    cover: Cover = "closed"
    errors: list[str] = []
    for part in parts:
        online = online and part.online
        if _PAPER_RANK[part.paper] > _PAPER_RANK[paper]:
            paper = part.paper
        if part.cover == "open":
            cover = "open"
        errors.extend(e for e in part.errors if e not in errors)
    if "error" in errors and _BLOCKING_ERRORS.difference({"error"}).intersection(errors):
        errors.remove("error")
    return PrinterStatus(online=online, paper=paper, cover=cover, errors=tuple(errors))


def parse_statuses(replies: Mapping[int, int]) -> PrinterStatus:
    """The printer's status from the replies to DLE EOT 1 to 4, keyed by n."""
    return merge_statuses(parse_status(n, byte) for n, byte in sorted(replies.items()))


# ------------------------------------------------------------------------- layout

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def _clean(text: str) -> str:
    """Control characters in a ticket's text would be printer commands: make them spaces."""
    return _UNPRINTABLE.sub(" ", text).strip()


def text_columns(text: str) -> int:
    """Columns at normal size: in Chinese mode every multi-byte character prints full width."""
    return sum(1 if ord(ch) < 0x80 else 2 for ch in text)


def _tokens(text: str) -> Iterator[str]:
    """ASCII words stay whole; each non-ASCII character can break on its own."""
    yield from re.findall(r"[\x21-\x7e]+| +|[^\x00-\x7f]", text)


def wrap(text: str, width: int, *, indent: str = "", hang: str = "") -> list[str]:
    """Fill lines of at most ``width`` columns; ``indent`` opens the first, ``hang`` the rest.

    A word longer than a line is cut where it has to be, so nothing is ever wider than the
    paper (the printer would wrap it on its own, mid-character for a double-width one).
    """
    lines: list[str] = []
    line, used, bare = indent, text_columns(indent), True

    def newline() -> None:
        nonlocal line, used, bare
        lines.append(line.rstrip())
        line, used, bare = hang, text_columns(hang), True

    for token in _tokens(text):
        size = text_columns(token)
        if token.isspace():
            if bare:
                continue
            if used + size > width:
                newline()
                continue
        elif used + size > width and not bare and size <= width - text_columns(hang):
            newline()
        if used + size <= width or token.isspace():
            line, used, bare = line + token, used + size, bare and token.isspace()
            continue
        for ch in token:
            if used + text_columns(ch) > width and not bare:
                newline()
            line, used, bare = line + ch, used + text_columns(ch), False
    if not bare:
        lines.append(line.rstrip())
    return lines


def _encode(text: str) -> bytes:
    return text.encode("gb18030", errors="replace")


def _code128(data: str) -> bytes | None:
    """GS k 73 in code set B; ``{`` is written ``{{``. None when the data does not fit."""
    if not data or not all(" " <= ch <= "~" for ch in data):
        return None
    body = b"{B" + data.replace("{", "{{").encode("ascii")
    if len(body) > 255:
        return None
    return b"\x1dh\x50\x1dw\x02\x1dH\x02\x1df\x00\x1dk\x49" + bytes([len(body)]) + body


@dataclass
class _Writer:
    """python-escpos's Dummy collects the commands; text goes in raw, as GB18030."""

    columns: int
    printer: Any = field(default_factory=Dummy)

    def __post_init__(self) -> None:
        self.printer.hw("INIT")
        self.printer._raw(CHINESE_ON)

    def style(self, *, size: int = 1, bold: bool = False, align: str = "left") -> None:
        """GS ! sizes ASCII and Chinese alike; ESC ! (python-escpos's ``double_*``) would
        leave Chinese characters at whatever size FS ! last set."""
        self.printer.set(custom_size=True, width=size, height=size)
        self.printer.set(bold=bold, align=align)

    def lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.printer._raw(_encode(line) + b"\n")

    def para(self, text: str, *, size: int = 1, indent: str = "", hang: str = "") -> None:
        self.lines(wrap(_clean(text), self.columns // size, indent=indent, hang=hang))

    def output(self) -> bytes:
        return bytes(self.printer.output)


def _estimate(minutes: float | None) -> str | None:
    if minutes is None or not math.isfinite(minutes):
        return None
    whole = max(0, math.ceil(minutes))
    return "预计等候：无需等候" if whole == 0 else f"预计等候：约 {whole} 分钟"


def render_ticket(
    ticket: TicketPrint,
    *,
    hall_name: str,
    window_hint: str | None = None,
    columns: int = 48,
    symbol: Symbol = "qr",
) -> bytes:
    """The ticket as ESC/POS bytes, ending with a feed and a cut.

    ``window_hint`` is the kiosk's own line about where to go, printed under the ticket's
    direction when it says something else. ``symbol`` picks a QR code or a CODE128
    barcode for ``ticket.qr``; content a barcode cannot carry falls back to a QR code.
    """
    out = _Writer(columns)
    out.style(bold=True, align="center")
    out.para(hall_name)
    out.lines([""])
    out.style(size=2, bold=True, align="center")
    out.para(ticket.number, size=2)
    out.style(bold=True, align="center")
    out.para(ticket.service_name)
    out.style()
    out.lines([""])
    if ticket.people_ahead is not None:
        out.para(f"前面等候：{max(0, ticket.people_ahead)} 人")
    estimate = _estimate(ticket.estimated_minutes)
    if estimate is not None:
        out.para(estimate)
    direction = _clean(ticket.direction)
    if direction:
        out.para(direction, indent="办理地点：", hang="          ")
    hint = _clean(window_hint or "")
    if hint and hint != direction:
        out.para(hint)
    materials = [m for m in (_clean(m) for m in ticket.materials) if m]
    if materials:
        out.lines(["所需材料："])
        for material in materials:
            out.para(material, indent="· ", hang="   ")
    if _clean(ticket.notice):
        out.lines([""])
        out.para(ticket.notice)
    _symbol(out, ticket.qr, symbol)
    out.style(align="center")
    out.para(f"取号时间：{ticket.issued_at:%Y-%m-%d %H:%M:%S}")
    out.style()
    out.printer.cut()
    return out.output()


def _symbol(out: _Writer, data: str, symbol: Symbol) -> None:
    """2331 bytes is a version 40 QR code's capacity at level M, in byte mode."""
    if not data:
        return
    out.style(align="center")
    out.lines([""])
    barcode = _code128(data) if symbol == "code128" else None
    if symbol == "code128" and barcode is None:
        log.warning("ticket code %r does not fit CODE128 set B; printing a QR code", data)
    if barcode is not None:
        out.printer._raw(barcode)
    elif len(data.encode("utf-8")) <= 2331:
        out.printer.qr(data, native=True, size=6, ec=QR_ECLEVEL_M, model=QR_MODEL_2)
    else:
        log.warning("ticket code of %d characters is too long for a QR code", len(data))
    out.lines([""])


# ---------------------------------------------------------------------- transport


@dataclass(frozen=True)
class Endpoint:
    kind: Literal["tcp", "serial", "usb"]
    address: str
    """host for tcp, the pyserial URL or path for serial, ``VID:PID`` for usb"""
    port: int = 0
    """TCP port, or the serial baud rate"""
    vendor: int = 0
    product: int = 0


def parse_url(url: str) -> Endpoint:
    """``tcp://host[:9100]``, ``serial://PATH[?baudrate=N]``, ``usb://VID:PID`` (hex),
    or anything else pyserial opens (a device path, ``socket://``, ``loop://``)."""
    parts = urlsplit(url)
    if parts.scheme == "tcp":
        if not parts.hostname:
            raise ValueError(f"no host in {url!r}")
        return Endpoint("tcp", parts.hostname, parts.port or DEFAULT_TCP_PORT)
    if parts.scheme == "usb":
        match = re.fullmatch(r"([0-9A-Fa-f]{1,4}):([0-9A-Fa-f]{1,4})", parts.netloc)
        if match is None:
            raise ValueError(f"usb URL is usb://VID:PID in hex, not {url!r}")
        vendor, product = (int(g, 16) for g in match.groups())
        return Endpoint("usb", parts.netloc, vendor=vendor, product=product)
    if parts.scheme == "serial":
        baud = parse_qs(parts.query).get("baudrate", [str(DEFAULT_BAUDRATE)])[0]
        if not baud.isdigit():
            raise ValueError(f"baudrate must be a number in {url!r}")
        return Endpoint("serial", parts.netloc + parts.path, int(baud))
    return Endpoint("serial", url, DEFAULT_BAUDRATE)


class _Link(Protocol):
    async def write(self, data: bytes) -> None: ...
    async def read_byte(self, timeout: float) -> int: ...
    def discard_input(self) -> None: ...
    async def close(self) -> None: ...


class _StreamLink:
    """A pump task keeps the incoming bytes, so stale ones can be dropped before a query."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer
        self._inbox = bytearray()
        self._arrived = asyncio.Event()
        self._eof = False
        self._pump = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while chunk := await self._reader.read(256):
                self._inbox += chunk
                self._arrived.set()
        except (OSError, ConnectionError) as error:
            log.info("printer link closed: %s", error)
        finally:
            self._eof = True
            self._arrived.set()

    async def write(self, data: bytes) -> None:
        if self._eof or self._writer.is_closing():
            raise DeviceUnavailable("the printer connection is closed")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except (OSError, ConnectionError) as error:
            raise DeviceUnavailable(f"lost the printer while writing: {error}") from error

    async def read_byte(self, timeout: float) -> int:
        async with asyncio.timeout(timeout):
            while not self._inbox:
                if self._eof:
                    raise DeviceUnavailable("the printer closed the connection")
                self._arrived.clear()
                await self._arrived.wait()
        byte = self._inbox[0]
        del self._inbox[0]
        return byte

    def discard_input(self) -> None:
        if self._inbox:
            log.warning("dropping %d unexpected bytes from the printer", len(self._inbox))
        self._inbox.clear()

    async def close(self) -> None:
        self._pump.cancel()
        self._writer.close()
        with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
            await self._writer.wait_closed()
        with contextlib.suppress(asyncio.CancelledError):
            await self._pump


class _UsbLink:
    """python-escpos's Usb, blocking pyusb calls in a worker thread. Untested: no hardware."""

    def __init__(self, printer: Any) -> None:
        self._printer = printer

    @classmethod
    async def open(cls, endpoint: Endpoint, timeout: float) -> _UsbLink:
        import usb.core
        from escpos.exceptions import DeviceNotFoundError
        from escpos.printer import Usb

        printer = Usb(endpoint.vendor, endpoint.product, timeout=int(timeout * 1000))
        try:
            await asyncio.to_thread(printer.open)
        except (DeviceNotFoundError, usb.core.USBError, OSError, ValueError) as error:
            # pyusb's NoBackendError (no libusb on the machine) is a ValueError.
            raise DeviceUnavailable(f"no USB printer {endpoint.address}: {error}") from error
        return cls(printer)

    async def write(self, data: bytes) -> None:
        import usb.core

        try:
            await asyncio.to_thread(self._printer._raw, data)
        except (usb.core.USBError, OSError, AssertionError) as error:
            raise DeviceUnavailable(f"lost the USB printer while writing: {error}") from error

    async def read_byte(self, timeout: float) -> int:
        import usb.core

        device = self._printer.device
        try:
            data = await asyncio.to_thread(
                device.read, self._printer.in_ep, 16, max(1, int(timeout * 1000))
            )
        except usb.core.USBTimeoutError as error:
            raise TimeoutError from error
        except (usb.core.USBError, OSError) as error:
            raise DeviceUnavailable(f"lost the USB printer while reading: {error}") from error
        if not data:
            raise TimeoutError
        return int(data[-1])

    def discard_input(self) -> None:
        """A USB read returns one transfer; nothing is left queued on this side."""

    async def close(self) -> None:
        await asyncio.to_thread(self._printer.close)


async def _connect(endpoint: Endpoint, timeout: float) -> _Link:
    if endpoint.kind == "usb":
        return await _UsbLink.open(endpoint, timeout)
    try:
        async with asyncio.timeout(timeout):
            if endpoint.kind == "tcp":
                reader, writer = await asyncio.open_connection(endpoint.address, endpoint.port)
            else:
                reader, writer = await open_serial(endpoint.address, endpoint.port)
    except TimeoutError as error:
        raise DeviceUnavailable(f"printer {endpoint.address} did not connect") from error
    except OSError as error:
        raise DeviceUnavailable(f"cannot reach printer {endpoint.address}: {error}") from error
    return _StreamLink(reader, writer)


# ------------------------------------------------------------------------ printer


class TicketPrinter:
    """One ticket printer. A call after a failure reopens the line by itself, so the
    agent's retry cadence is the backoff; ``close`` ends it for good until the next call."""

    def __init__(
        self, url: str, *, timeout: float = 2.0, symbol: Symbol = "qr", columns: int = 48
    ) -> None:
        self.url = url
        self.endpoint = parse_url(url)
        self.timeout = timeout
        self.symbol: Symbol = symbol
        self.columns = columns
        self._link: _Link | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        if self._link is None:
            self._link = await _connect(self.endpoint, self.timeout)

    async def close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.close()

    async def status(self) -> PrinterStatus:
        async with self._lock:
            return await self._status()

    async def print_ticket(
        self, ticket: TicketPrint, *, hall_name: str, window_hint: str | None = None
    ) -> None:
        """Refuses (``PrinterNotReady``) before sending anything when the printer cannot
        print; asks again afterwards, so a roll that ran out mid-ticket is reported too."""
        data = render_ticket(
            ticket,
            hall_name=hall_name,
            window_hint=window_hint,
            columns=self.columns,
            symbol=self.symbol,
        )
        async with self._lock:
            before = await self._status()
            reason = before.refusal()
            if reason is not None:
                raise PrinterNotReady(reason, before)
            await self._guarded(lambda link: link.write(data))
            after = await self._status()
            if after.paper == "out":
                raise PrinterNotReady(PAPER_OUT_REASON, after)

    async def _status(self) -> PrinterStatus:
        replies: dict[int, int] = {}
        for n in (1, 2, 3, 4):
            replies[n] = await self._guarded(functools.partial(self._query, n=n))
        return parse_statuses(replies)

    async def _query(self, link: _Link, *, n: int) -> int:
        link.discard_input()
        await link.write(DLE_EOT + bytes([n]))
        try:
            byte = await link.read_byte(self.timeout)
        except TimeoutError as error:
            raise DeviceUnavailable(
                f"printer gave no answer to DLE EOT {n} within {self.timeout} s"
            ) from error
        check_status_byte(n, byte)
        return byte

    async def _guarded(self, step: Callable[[_Link], Awaitable[T]]) -> T:
        """Run one step on the link; a link that failed is dropped, to be reopened next call."""
        await self.open()
        assert self._link is not None
        try:
            return await step(self._link)
        except DeviceUnavailable:
            await self.close()
            raise
