"""A resident ID card reader's SAM module, byte for byte, on the far end of a serial line.

It answers find (20 01), select (20 02), read text and photo (30 01), reader status
(11 FF) and SAM id (12 FF) as ../shared/protocols/README.md describes them, with the
card layouts cited in ``drivers.idcard``. Its framing and text layouts are written
here again from the notes, not borrowed from the driver, so a driver whose framing or
offsets were wrong fails against it. Requests with a bad checksum get status 0x10,
unknown commands 0x21, as a real SAM does.

Fault knobs (plain attributes, change them at any time): ``bad_checksum`` (every reply),
``corrupt_next`` (the next N replies), ``noise`` (bytes sent before each reply),
``chunk_size``/``chunk_delay`` (replies trickle out in pieces; 1 = single bytes),
``silent`` (hear but never answer), ``read_fails`` (30 01 answers 0x41),
``select_fails`` (20 02 answers 0x81).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from drivers.idcard import IdCard

_HEAD = bytes([0xAA, 0xAA, 0xAA, 0x96, 0x69])
_STATUS_OK = 0x90
_STATUS_FOUND = 0x9F
_STATUS_NO_CARD = 0x80
_STATUS_SELECT_FAILED = 0x81
_STATUS_READ_FAILED = 0x41
_STATUS_BAD_CHECKSUM = 0x10
_STATUS_BAD_COMMAND = 0x21

DEFAULT_PHOTO = bytes((i * 7 + 3) % 256 for i in range(1024))
"""A stand-in wlt image: the real format is the SAM vendor's, and only length matters."""

CardKind = Literal["resident", "foreign_permanent", "hk_macau_taiwan"]

_Layout = tuple[tuple[str, int, int], ...]
"""(field, offset, size in bytes) per layout; see drivers.idcard for the sources."""

_RESIDENT: _Layout = (
    ("name", 0, 30), ("sex", 30, 2), ("nation", 32, 4), ("birth_date", 36, 16),
    ("address", 52, 70), ("id_number", 122, 36), ("authority", 158, 30),
    ("valid_from", 188, 16), ("valid_to", 204, 16),
)
_HK_MACAU_TAIWAN: _Layout = (
    *_RESIDENT[:2], *_RESIDENT[3:],
    ("pass_number", 220, 18), ("issue_count", 238, 4), ("flag", 248, 2),
)
_FOREIGN_2017: _Layout = (
    ("english_name", 0, 120), ("sex", 120, 2), ("id_number", 122, 30), ("nation", 152, 6),
    ("name", 158, 30), ("valid_from", 188, 16), ("valid_to", 204, 16),
    ("birth_date", 220, 16), ("card_version", 236, 4), ("authority", 240, 8),
    ("flag", 248, 2),
)
_FOREIGN_2023: _Layout = (
    ("name", 0, 30), ("sex", 30, 2), ("renewal_count", 32, 4), ("birth_date", 36, 16),
    ("english_name", 52, 70), ("id_number", 122, 36), ("valid_from", 188, 16),
    ("valid_to", 204, 16), ("english_name_more", 220, 22), ("nation", 242, 6),
    ("flag", 248, 2), ("previous_number", 250, 6),
)


def _xor(data: bytes) -> int:
    result = 0
    for byte in data:
        result ^= byte
    return result


def sam_frame(sw3: int, data: bytes = b"", *, corrupt: bool = False) -> bytes:
    """A response frame: preamble, LEN (BE, counting SW1 SW2 SW3 DATA CHK), CHK = XOR."""
    body = (len(data) + 4).to_bytes(2, "big") + bytes([0x00, 0x00, sw3]) + data
    check = _xor(body) ^ (0x5A if corrupt else 0)
    return _HEAD + body + bytes([check])


def _date_text(value: datetime.date | str | None) -> str:
    if value is None:
        return "长期"
    if isinstance(value, datetime.date):
        return value.strftime("%Y%m%d")
    return value


def build_text_block(
    card_type: CardKind = "resident",
    *,
    name: str = "",
    sex: str = "1",
    nation: str = "",
    birth_date: datetime.date | str = "",
    address: str = "",
    id_number: str = "",
    authority: str = "",
    valid_from: datetime.date | str = "",
    valid_to: datetime.date | str | None = "",
    english_name: str = "",
    pass_number: str = "",
    issue_count: str = "",
    card_version: str = "",
    renewal_count: str = "",
    previous_number: str = "",
    layout: Literal["2017", "2023"] = "2017",
) -> bytes:
    """A 256-byte UCS-2 LE text block as the chip stores it, space padded.

    Dates take a ``date`` or the raw text (to build broken cards); ``valid_to=None``
    writes 长期. ``layout`` picks the foreign card's 2017 ('I') or 2023 ('Y') layout.
    """
    values = {
        "name": name, "sex": sex, "nation": nation, "birth_date": _date_text(birth_date),
        "address": address, "id_number": id_number, "authority": authority,
        "valid_from": _date_text(valid_from), "valid_to": _date_text(valid_to),
        "english_name": english_name, "pass_number": pass_number,
        "issue_count": issue_count, "card_version": card_version,
        "renewal_count": renewal_count, "previous_number": previous_number,
    }
    fields: _Layout
    if card_type == "resident":
        fields = _RESIDENT
    elif card_type == "hk_macau_taiwan":
        fields, values["flag"] = _HK_MACAU_TAIWAN, "J"
    elif layout == "2017":
        fields, values["flag"] = _FOREIGN_2017, "I"
    else:
        fields, values["flag"] = _FOREIGN_2023, "Y"
        values["english_name"], values["english_name_more"] = english_name[:35], english_name[35:]
    block = bytearray(" ".encode("utf-16-le") * 128)
    for field, offset, size in fields:
        encoded = values[field].encode("utf-16-le")
        if len(encoded) > size:
            raise ValueError(f"{field} {values[field]!r} does not fit in {size} bytes")
        block[offset : offset + len(encoded)] = encoded
    return bytes(block)


def text_block_of(card: IdCard) -> bytes:
    """The text block that reads back as ``card``."""
    foreign = card.card_type == "foreign_permanent"
    chinese = "" if foreign and card.name == card.english_name else card.name
    return build_text_block(
        card.card_type,
        name=chinese,
        sex=card.sex,
        nation=card.nation,
        birth_date=card.birth_date,
        address=card.address,
        id_number=card.id_number,
        authority=card.authority,
        valid_from=card.valid_from,
        valid_to=card.valid_to,
        english_name=card.english_name or "",
        pass_number=card.pass_number or "",
        issue_count=card.issue_count or "",
        card_version=card.card_version or "",
        renewal_count=card.renewal_count or "",
        previous_number=card.previous_number or "",
        layout="2023" if card.type_flag == "Y" else "2017",
    )


@dataclass
class _Line:
    """The simulator's end: a pty master fd or a socket, non-blocking."""

    fileno: int
    recv: Callable[[], bytes]
    send: Callable[[bytes], int]


def _line(endpoint: int | socket.socket) -> _Line:
    if isinstance(endpoint, socket.socket):
        endpoint.setblocking(False)
        return _Line(endpoint.fileno(), lambda: endpoint.recv(4096), endpoint.send)
    os.set_blocking(endpoint, False)
    return _Line(endpoint, lambda: os.read(endpoint, 4096), lambda d: os.write(endpoint, d))


class IdCardSimulator:
    """Attach it to a line (``attach``), ``place`` a card, and the driver reads it.

    ``requests`` keeps every request frame as received, raw, for byte-level checks.
    Detach before the line's fd is closed (a pty_kit unplug), attach again after a
    replug: the card and the knobs stay.
    """

    def __init__(self, endpoint: int | socket.socket | None = None) -> None:
        self.text: bytes | None = None
        self.photo = DEFAULT_PHOTO
        self.bad_checksum = False
        self.corrupt_next = 0
        self.noise = b""
        self.chunk_size: int | None = None
        self.chunk_delay = 0.0
        self.silent = False
        self.read_fails = False
        self.select_fails = False
        self.requests: list[bytes] = []
        self._received = bytearray()
        self._line: _Line | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        if endpoint is not None:
            self.attach(endpoint)

    # ---------------------------------------------------------------- the card

    def place(self, card: bytes | IdCard, photo: bytes | None = None) -> None:
        """Lay a card on the reader: an ``IdCard``, or a raw text block (256 bytes,
        optionally followed by the photo)."""
        if isinstance(card, IdCard):
            self.text, self.photo = text_block_of(card), card.photo_wlt
        else:
            self.text, rest = card[:256], card[256:]
            self.photo = rest or DEFAULT_PHOTO
        if photo is not None:
            self.photo = photo

    def remove(self) -> None:
        self.text = None

    # ---------------------------------------------------------------- the line

    def attach(self, endpoint: int | socket.socket) -> None:
        self.detach()
        self._line = _line(endpoint)
        self._received.clear()
        loop = asyncio.get_running_loop()
        loop.add_reader(self._line.fileno, self._readable)
        self._outbox = asyncio.Queue()
        self._sender = loop.create_task(self._send_replies())

    def detach(self) -> None:
        if self._line is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._line.fileno)
            self._line = None
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None

    close = detach

    async def __aenter__(self) -> IdCardSimulator:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.detach()

    def _readable(self) -> None:
        if self._line is None:
            return
        try:
            data = self._line.recv()
        except BlockingIOError:
            return
        except OSError:
            self.detach()
            return
        if not data:
            self.detach()
            return
        self._received += data
        self._take_requests()

    def _take_requests(self) -> None:
        while True:
            start = self._received.find(_HEAD)
            if start < 0:
                del self._received[: max(0, len(self._received) - 4)]
                return
            del self._received[:start]
            if len(self._received) < 7:
                return
            length = self._received[5] << 8 | self._received[6]
            if length < 3 or length > 4096:
                del self._received[:1]
                continue
            if len(self._received) < 7 + length:
                return
            frame = bytes(self._received[: 7 + length])
            del self._received[: 7 + length]
            self.requests.append(frame)
            reply = self._reply(frame)
            if reply is not None and not self.silent:
                self._outbox.put_nowait(self.noise + reply)

    def _reply(self, frame: bytes) -> bytes | None:
        corrupt = self.bad_checksum or self.corrupt_next > 0
        if self.corrupt_next > 0:
            self.corrupt_next -= 1

        def answer(sw3: int, data: bytes = b"") -> bytes:
            return sam_frame(sw3, data, corrupt=corrupt)

        if _xor(frame[5:-1]) != frame[-1]:
            return answer(_STATUS_BAD_CHECKSUM)
        command = frame[7:9]
        if command == b"\x20\x01":
            return answer(_STATUS_FOUND, bytes(4)) if self.text else answer(_STATUS_NO_CARD)
        if command == b"\x20\x02":
            if self.text is None or self.select_fails:
                return answer(_STATUS_SELECT_FAILED)
            return answer(_STATUS_OK, bytes(8))
        if command == b"\x30\x01":
            if self.text is None or self.read_fails:
                return answer(_STATUS_READ_FAILED)
            lengths = len(self.text).to_bytes(2, "big") + len(self.photo).to_bytes(2, "big")
            return answer(_STATUS_OK, lengths + self.text + self.photo)
        if command == b"\x11\xff":
            return answer(_STATUS_OK)
        if command == b"\x12\xff":
            return answer(_STATUS_OK, bytes.fromhex("0501000000000000" "1122334455667788"))
        return answer(_STATUS_BAD_COMMAND)

    async def _send_replies(self) -> None:
        while True:
            reply = await self._outbox.get()
            size = self.chunk_size or len(reply)
            for offset in range(0, len(reply), size):
                await self._write(reply[offset : offset + size])
                if self.chunk_size is not None:
                    await asyncio.sleep(self.chunk_delay)

    async def _write(self, data: bytes) -> None:
        while data:
            if self._line is None:
                return
            try:
                sent = self._line.send(data)
            except BlockingIOError:
                await asyncio.sleep(0.001)
                continue
            except OSError:
                return
            data = data[sent:]
