"""An ESC/POS ticket printer that decodes what it is sent onto a simulated paper roll.

It follows the Epson *ESC/POS Command Reference* (command lengths, ESC ! / GS ! / FS !
character sizes, GS ( k QR code functions, GS k barcode forms A and B, GS V cut modes,
DLE EOT n real-time status) and the Chinese-printer extension FS & / FS . with GB18030
text, as Chinese kiosk printers take it. It is written from the specification, not from
the driver, so a test that reads the roll checks what would come out of a real printer:

- text lands on lines, split into spans of one style (width and height multipliers, bold);
  ESC ! sizes ASCII only, FS ! Chinese only, GS ! both, as on the real thing;
- a line wider than the paper wraps on its own and is marked ``auto_wrapped``;
- GS ( k cn=49 fn=80 (function 180) stores QR data, fn=81 (function 181) prints it;
- a cut closes the ticket and starts the next one.

Status bytes (bits 1 and 4 on, 0 and 7 off) are answered at once from the settable
``paper``, ``cover`` and error flags. Bytes it cannot make sense of are skipped with a
warning and decoding resumes at the next byte; it never raises on input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger(__name__)

Paper = Literal["ok", "near_end", "out"]
Cover = Literal["closed", "open"]

ESC, GS, FS, DLE = 0x1B, 0x1D, 0x1C, 0x10
MAX_COMMAND_BYTES = 1 << 20
"""A command announcing more data than this is garbage, not a 4 GB image to wait for."""

# Parameter bytes after the two command bytes, for the commands of fixed length.
_ESC_FIXED = {
    **dict.fromkeys(b"@2SLivm<", 0),
    **dict.fromkeys(b"!EG-MadJKe3A+tR{ VrT%?U=uC", 1),
    **dict.fromkeys(b"$\\Bfc", 2),
    ord("p"): 3,
    ord("W"): 8,
}
_GS_FIXED = {
    ord(":"): 0,
    **dict.fromkeys(b"!BbHfhwarI|TE/j", 1),
    **dict.fromkeys(b"LW$\\P", 2),
    ord("^"): 3,
}
_FS_FIXED = {
    **dict.fromkeys(b"&.", 0),
    **dict.fromkeys(b"!-CWr", 1),
    **dict.fromkeys(b"Sp", 2),
}
_ALIGN: dict[int, Literal["left", "center", "right"]] = {0: "left", 1: "center", 2: "right"}
_BARCODE_NAMES = {
    0: "UPC-A", 1: "UPC-E", 2: "EAN13", 3: "EAN8", 4: "CODE39", 5: "ITF", 6: "CODABAR",
    65: "UPC-A", 66: "UPC-E", 67: "EAN13", 68: "EAN8", 69: "CODE39", 70: "ITF",
    71: "CODABAR", 72: "CODE93", 73: "CODE128", 74: "GS1-128",
    75: "GS1 DATABAR OMNIDIRECTIONAL", 76: "GS1 DATABAR TRUNCATED",
    77: "GS1 DATABAR LIMITED", 78: "GS1 DATABAR EXPANDED", 79: "CODE128 AUTO",
}


# -------------------------------------------------------------------- the paper


@dataclass(frozen=True)
class Span:
    text: str
    width: int = 1
    height: int = 1
    bold: bool = False

    @property
    def double(self) -> bool:
        return self.width >= 2 and self.height >= 2


@dataclass(frozen=True)
class Line:
    spans: tuple[Span, ...] = ()
    align: Literal["left", "center", "right"] = "left"
    auto_wrapped: bool = False
    """The printer broke this line because it was wider than the paper."""

    @property
    def text(self) -> str:
        return "".join(span.text for span in self.spans)


@dataclass(frozen=True)
class Symbol:
    kind: Literal["qr", "barcode", "image"]
    symbology: str
    data: str


@dataclass
class Ticket:
    """What was printed between two cuts, in order; ``cut`` is None until it is cut off."""

    items: list[Line | Symbol] = field(default_factory=list)
    cut: Literal["full", "partial"] | None = None

    @property
    def lines(self) -> list[Line]:
        return [item for item in self.items if isinstance(item, Line)]

    @property
    def text_lines(self) -> list[str]:
        """The non-blank lines' text, stripped: what a reader of the ticket sees."""
        return [line.text.strip() for line in self.lines if line.text.strip()]

    @property
    def qr_codes(self) -> list[str]:
        return [i.data for i in self.items if isinstance(i, Symbol) and i.kind == "qr"]

    @property
    def barcodes(self) -> list[Symbol]:
        return [i for i in self.items if isinstance(i, Symbol) and i.kind == "barcode"]

    def spans_of(self, text: str) -> list[Span]:
        return [s for line in self.lines for s in line.spans if text in s.text]


@dataclass
class PaperRoll:
    tickets: list[Ticket] = field(default_factory=list)
    """Tickets cut off the roll, oldest first."""
    pending: Ticket = field(default_factory=Ticket)
    """Printed since the last cut, still on the roll."""

    @property
    def empty(self) -> bool:
        return not self.tickets and not self.pending.items


# ------------------------------------------------------------------ the decoder


def _decode_code128(data: bytes) -> str:
    """Code sets A/B carry characters, C two digits a byte; ``{x`` switches or escapes."""
    out: list[str] = []
    code_set = "B"
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x7B and i + 1 < len(data):
            nxt = chr(data[i + 1])
            if nxt in "ABC":
                code_set = nxt
            elif nxt == "{":
                out.append("{")
            i += 2
            continue
        out.append(f"{byte:02d}" if code_set == "C" and byte < 100 else chr(byte))
        i += 1
    return "".join(out)


def _decode_text(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030", errors="replace")


class EscPosDecoder:
    """Turns a byte stream into a paper roll; ``feed`` returns the bytes to send back.

    Input may arrive in any pieces: an incomplete command waits for the rest.
    ``status`` gives the reply byte to DLE EOT n (None: stay silent).
    """

    def __init__(
        self,
        status: Callable[[int], int | None],
        *,
        columns: int = 48,
        chinese_by_default: bool = False,
    ) -> None:
        self.roll = PaperRoll()
        self.columns = columns
        self.lines_left: int | None = None
        """Lines the roll still holds (None: endless). At 0 the paper is out and nothing
        more reaches the paper, as when the end sensor stops a real printer mid-ticket."""
        self._status = status
        self._chinese_default = chinese_by_default
        self._buffer = bytearray()
        self._reply = bytearray()
        self._reset()

    # The printer's modes, as ESC @ leaves them.
    def _reset(self) -> None:
        self.chinese = self._chinese_default
        self._ank = (1, 1)
        self._kanji = (1, 1)
        self._bold = False
        self._align: Literal["left", "center", "right"] = "left"
        self._spans: list[Span] = []
        self._used = 0
        self._qr_data: bytes | None = None

    def discard_partial(self) -> None:
        """The line went away mid-command: what was half received is lost."""
        if self._buffer:
            log.warning("dropping %d bytes of an unfinished command", len(self._buffer))
        self._buffer.clear()

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        pos = 0
        while pos < len(self._buffer):
            step = self._step(pos)
            if step is None:
                break
            pos = step
        del self._buffer[:pos]
        reply = bytes(self._reply)
        self._reply.clear()
        return reply

    # -- text

    def _put(self, ch: str, base_cols: int, kanji: bool) -> None:
        width, height = self._kanji if kanji else self._ank
        cols = base_cols * width
        if self._used + cols > self.columns and self._used > 0:
            self._end_line(auto_wrapped=True)
        self._used += cols
        last = self._spans[-1] if self._spans else None
        if last and (last.width, last.height, last.bold) == (width, height, self._bold):
            self._spans[-1] = Span(last.text + ch, width, height, self._bold)
        else:
            self._spans.append(Span(ch, width, height, self._bold))

    @property
    def out_of_paper(self) -> bool:
        return self.lines_left == 0

    def _mark(self, item: Line | Symbol) -> None:
        if self.lines_left is None:
            self.roll.pending.items.append(item)
        elif self.lines_left > 0:
            self.roll.pending.items.append(item)
            self.lines_left -= 1

    def _end_line(self, *, auto_wrapped: bool = False) -> None:
        self._mark(Line(tuple(self._spans), self._align, auto_wrapped))
        self._spans, self._used = [], 0

    def _flush(self) -> None:
        if self._spans:
            self._end_line()

    def _feed_lines(self, n: int) -> None:
        if n == 0:
            self._flush()
            return
        self._end_line()
        for _ in range(n - 1):
            self._end_line()

    def _cut(self, kind: Literal["full", "partial"]) -> None:
        self._flush()
        self.roll.pending.cut = kind
        self.roll.tickets.append(self.roll.pending)
        self.roll.pending = Ticket()

    def _skip(self, pos: int, count: int, why: str) -> int:
        log.warning(
            "skipping %s at byte %d: %s", self._buffer[pos : pos + count].hex(" "), pos, why
        )
        return pos + count

    # -- the dispatcher: each returns the next position, or None to wait for more bytes

    def _step(self, pos: int) -> int | None:
        buf = self._buffer
        byte = buf[pos]
        if byte == 0x0A:
            self._end_line()
            return pos + 1
        if byte == 0x0D:
            return pos + 1
        if byte == 0x09:
            for _ in range(8 - self._used % 8):
                self._put(" ", 1, False)
            return pos + 1
        if byte in (ESC, GS, FS, DLE):
            if pos + 1 >= len(buf):
                return None
            handler = {ESC: self._esc, GS: self._gs, FS: self._fs, DLE: self._dle}[byte]
            return handler(pos, buf[pos + 1])
        if byte < 0x20 or byte == 0x7F:
            return self._skip(pos, 1, "control byte with no meaning here")
        if byte < 0x80:
            self._put(chr(byte), 1, False)
            return pos + 1
        if not self.chinese:
            self._put(bytes([byte]).decode("cp437"), 1, False)
            return pos + 1
        return self._gb18030(pos)

    def _gb18030(self, pos: int) -> int | None:
        """Lead 0x81-0xFE; then 0x40-0x7E/0x80-0xFE (two bytes) or 0x30-0x39 0x81-0xFE
        0x30-0x39 (four bytes)."""
        buf = self._buffer
        lead = buf[pos]
        if not 0x81 <= lead <= 0xFE:
            return self._skip(pos, 1, "not a GB18030 lead byte")
        if pos + 1 >= len(buf):
            return None
        second = buf[pos + 1]
        if 0x40 <= second <= 0xFE and second != 0x7F:
            length = 2
        elif 0x30 <= second <= 0x39:
            if pos + 3 >= len(buf):
                return None
            if not (0x81 <= buf[pos + 2] <= 0xFE and 0x30 <= buf[pos + 3] <= 0x39):
                return self._skip(pos, 1, "broken four-byte GB18030 character")
            length = 4
        else:
            return self._skip(pos, 1, "GB18030 lead byte without a trail byte")
        self._put(bytes(buf[pos : pos + length]).decode("gb18030", errors="replace"), 2, True)
        return pos + length

    def _esc(self, pos: int, cmd: int) -> int | None:
        buf = self._buffer
        if cmd in _ESC_FIXED:
            end = pos + 2 + _ESC_FIXED[cmd]
            if end > len(buf):
                return None
            self._esc_apply(cmd, bytes(buf[pos + 2 : end]))
            return end
        if cmd == ord("*"):
            if pos + 5 > len(buf):
                return None
            mode, count = buf[pos + 2], buf[pos + 3] | buf[pos + 4] << 8
            if mode not in (0, 1, 32, 33):
                return self._skip(pos, 3, "ESC * with an unknown bit image mode")
            return self._need(pos + 5 + count * (1 if mode < 32 else 3))
        if cmd == ord("D"):
            end = buf.find(b"\x00", pos + 2, pos + 35)
            if end < 0:
                return None if len(buf) < pos + 35 else self._skip(pos, 2, "ESC D unended")
            return end + 1
        return self._skip(pos, 2, "unknown ESC command")

    def _esc_apply(self, cmd: int, args: bytes) -> None:
        if cmd == ord("@"):
            self._reset()
        elif cmd == ord("!"):
            mode = args[0]
            self._ank = (2 if mode & 0x20 else 1, 2 if mode & 0x10 else 1)
            self._bold = bool(mode & 0x08)
        elif cmd == ord("E"):
            self._bold = bool(args[0] & 1)
        elif cmd == ord("a"):
            self._align = _ALIGN.get(args[0] % 48, self._align)
        elif cmd == ord("d"):
            self._feed_lines(args[0])
        elif cmd == ord("J"):
            self._flush()
        elif cmd == ord("i"):
            self._cut("full")
        elif cmd == ord("m"):
            self._cut("partial")

    def _need(self, end: int) -> int | None:
        return None if end > len(self._buffer) else end

    def _gs(self, pos: int, cmd: int) -> int | None:
        buf = self._buffer
        if cmd in _GS_FIXED:
            end = pos + 2 + _GS_FIXED[cmd]
            if end > len(buf):
                return None
            if cmd == ord("!"):
                size = buf[pos + 2]
                sizes = ((size >> 4 & 7) + 1, (size & 7) + 1)
                self._ank = self._kanji = sizes
            return end
        if cmd == ord("V"):
            return self._gs_cut(pos)
        if cmd == ord("k"):
            return self._gs_barcode(pos)
        if cmd == ord("("):
            if pos + 5 > len(buf):
                return None
            end = pos + 5 + (buf[pos + 3] | buf[pos + 4] << 8)
            if end > len(buf):
                return None
            if buf[pos + 2] == ord("k"):
                self._two_d(bytes(buf[pos + 5 : end]))
            return end
        if cmd == ord("8"):
            if pos + 7 > len(buf):
                return None
            size = int.from_bytes(buf[pos + 3 : pos + 7], "little")
            if buf[pos + 2] != ord("L") or size > MAX_COMMAND_BYTES:
                return self._skip(pos, 3, "GS 8 that is not a sane GS 8 L")
            return self._need(pos + 7 + size)
        if cmd == ord("v"):
            if pos + 8 > len(buf):
                return None
            if buf[pos + 2] != ord("0"):
                return self._skip(pos, 3, "GS v that is not GS v 0")
            wide, high = buf[pos + 4] | buf[pos + 5] << 8, buf[pos + 6] | buf[pos + 7] << 8
            if wide * high > MAX_COMMAND_BYTES:
                return self._skip(pos, 3, "GS v 0 image larger than any paper")
            image_end = self._need(pos + 8 + wide * high)
            if image_end is not None:
                self._flush()
                self._mark(Symbol("image", "raster", f"{wide * 8}x{high}"))
            return image_end
        if cmd == ord("*"):
            if pos + 4 > len(buf):
                return None
            return self._need(pos + 4 + buf[pos + 2] * buf[pos + 3] * 8)
        return self._skip(pos, 2, "unknown GS command")

    def _gs_cut(self, pos: int) -> int | None:
        buf = self._buffer
        if pos + 3 > len(buf):
            return None
        mode = buf[pos + 2]
        if mode in (0, 1, 48, 49):
            self._cut("full" if mode in (0, 48) else "partial")
            return pos + 3
        if mode in (65, 66, 97, 98, 103, 104):
            if pos + 4 > len(buf):
                return None
            self._cut("full" if mode % 2 else "partial")
            return pos + 4
        return self._skip(pos, 3, "GS V with an unknown cut mode")

    def _gs_barcode(self, pos: int) -> int | None:
        buf = self._buffer
        if pos + 3 > len(buf):
            return None
        kind = buf[pos + 2]
        if kind <= 6:
            end = buf.find(b"\x00", pos + 3, pos + 259)
            if end < 0:
                return None if len(buf) < pos + 259 else self._skip(pos, 3, "GS k unended")
            data, after = bytes(buf[pos + 3 : end]), end + 1
        elif 65 <= kind <= 79:
            if pos + 4 > len(buf):
                return None
            after = pos + 4 + buf[pos + 3]
            if after > len(buf):
                return None
            data = bytes(buf[pos + 4 : after])
        else:
            return self._skip(pos, 3, "GS k with an unknown symbology")
        name = _BARCODE_NAMES.get(kind, str(kind))
        text = _decode_code128(data) if kind == 73 else data.decode("latin-1")
        self._flush()
        self._mark(Symbol("barcode", name, text))
        return after

    def _two_d(self, body: bytes) -> None:
        """GS ( k: cn=49 is QR; fn=80 stores data after m, fn=81 prints what is stored."""
        if len(body) < 2 or body[0] != 49:
            return
        fn = body[1]
        if fn == 80 and len(body) >= 3:
            self._qr_data = body[3:]
        elif fn == 81 and self._qr_data:
            self._flush()
            self._mark(Symbol("qr", "QR", _decode_text(self._qr_data)))

    def _fs(self, pos: int, cmd: int) -> int | None:
        buf = self._buffer
        if cmd in _FS_FIXED:
            end = pos + 2 + _FS_FIXED[cmd]
            if end > len(buf):
                return None
            arg = buf[pos + 2] if end > pos + 2 else 0
            if cmd == ord("&"):
                self.chinese = True
            elif cmd == ord("."):
                self.chinese = False
            elif cmd == ord("!"):
                self._kanji = (2 if arg & 0x04 else 1, 2 if arg & 0x08 else 1)
            elif cmd == ord("W"):
                self._kanji = (2, 2) if arg & 1 else (1, 1)
            return end
        if cmd == ord("2"):
            return self._need(pos + 4 + 72)
        return self._skip(pos, 2, "unknown FS command")

    def _dle(self, pos: int, cmd: int) -> int | None:
        buf = self._buffer
        if cmd == 0x04:
            if pos + 3 > len(buf):
                return None
            n = buf[pos + 2]
            if n in (1, 2, 3, 4):
                reply = self._status(n)
                if reply is not None:
                    self._reply.append(reply)
                return pos + 3
            if n in (7, 8, 18):
                return self._need(pos + 4)
            return self._skip(pos, 3, "DLE EOT with an unknown n")
        if cmd == 0x05:
            return self._need(pos + 3)
        if cmd == 0x14:
            if pos + 3 > len(buf):
                return None
            return self._need(pos + {7: 4, 8: 10}.get(buf[pos + 2], 5))
        return self._skip(pos, 1, "DLE not starting a real-time command")


# ---------------------------------------------------------------- the printer


class EscPosSimulator:
    """A ticket printer on TCP (``start``) and/or a pty (``attach``), sharing one roll.

    Set ``paper``, ``cover``, ``cutter_error``, ``unrecoverable`` or ``overheated`` to
    change what the status replies say (``decoder.lines_left`` runs the roll out while
    printing); ``status_override[n]`` answers a fixed byte (a
    broken printer) and ``mute`` answers nothing (a hung one).
    """

    def __init__(self, *, columns: int = 48, chinese_by_default: bool = False) -> None:
        self.paper: Paper = "ok"
        self.cover: Cover = "closed"
        self.cutter_error = False
        self.unrecoverable = False
        self.overheated = False
        self.mute = False
        self.status_override: dict[int, int] = {}
        self.status_requests = 0
        self.decoder = EscPosDecoder(
            self.status_byte, columns=columns, chinese_by_default=chinese_by_default
        )
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._fd = -1

    @property
    def roll(self) -> PaperRoll:
        return self.decoder.roll

    def status_byte(self, n: int) -> int | None:
        self.status_requests += 1
        if self.mute:
            return None
        if n in self.status_override:
            return self.status_override[n]
        if self.decoder.out_of_paper:
            self.paper = "out"
        error = self.cutter_error or self.unrecoverable or self.overheated
        stopped = self.paper == "out" or self.cover == "open" or error
        byte = 0x12
        if n == 1 and stopped:
            byte |= 0x08
        elif n == 2:
            byte |= (0x04 if self.cover == "open" else 0) | (0x20 if self.paper == "out" else 0)
            byte |= 0x40 if error else 0
        elif n == 3:
            byte |= 0x08 if self.cutter_error else 0
            byte |= (0x20 if self.unrecoverable else 0) | (0x40 if self.overheated else 0)
        elif n == 4:
            byte |= 0x0C if self.paper != "ok" else 0
            byte |= 0x60 if self.paper == "out" else 0
        return byte

    # -- TCP

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while chunk := await reader.read(4096):
                reply = self.decoder.feed(chunk)
                if reply:
                    writer.write(reply)
                    await writer.drain()
        except (OSError, ConnectionError) as error:
            log.info("simulated printer connection ended: %s", error)
        finally:
            self.decoder.discard_partial()
            self._writers.discard(writer)
            writer.close()

    async def drop_connections(self) -> None:
        """The network cable is pulled: every open connection ends."""
        for writer in list(self._writers):
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()

    async def stop(self) -> None:
        self.detach()
        if self._server is not None:
            self._server.close()
            await self.drop_connections()
            await self._server.wait_closed()
            self._server = None

    # -- pty

    def attach(self, fd: int) -> None:
        """Serve the pty master ``fd`` (tests.pty_kit.SerialLine.fd) from the running loop."""
        self.detach()
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._on_pty)

    def detach(self) -> None:
        """Stop serving the pty; call before the line is unplugged."""
        if self._fd >= 0:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._fd)
            self._fd = -1
            self.decoder.discard_partial()

    def _on_pty(self) -> None:
        try:
            chunk = os.read(self._fd, 4096)
            reply = self.decoder.feed(chunk)
            if reply:
                os.write(self._fd, reply)
        except OSError as error:
            log.info("simulated printer pty gone: %s", error)
            self.detach()
