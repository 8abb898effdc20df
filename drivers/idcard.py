"""Second-generation resident ID card readers over serial (D6): the SAM protocol of the
GA 467 family, which most readers speak whatever the brand.

Sources followed:

- Framing, commands and status bytes: ../shared/protocols/README.md ("Resident ID card
  reader"), itself from public reader libraries. The request frames
  ``AA AA AA 96 69 00 03 20 01 22`` (find), ``... 20 02 21`` (select) and
  ``... 30 01 32`` (read text and photo) are reproduced byte for byte.
- Resident card text block (256 bytes, UCS-2 LE): the same notes; the offsets match
  Kunoon/BeiST20141020 ``src/com/sdses/idreader/ID2Info.java`` (a Synjones/神思 wrapper).
- Foreign permanent-resident card, 2017 layout (type flag ``I``): the machine-readable
  item table published by reader vendors (afzhan.com/st170652/news_212938.html,
  "外国人身份证居留证芯片机读数据项表": English name 120, sex 2, number 30, nationality
  6, Chinese name 30, valid from 16, valid to 16, birth date 16, card version 4,
  authority code 8, type flag 2, reserved 6) and the struct ``tagIDForeigner`` in
  Johann356/readinfo ``PCSCGetData.h``.
- Foreign permanent-resident card, 2023 layout (type flag ``Y``, issued from 2023-12-01,
  18-digit GB 11643 number starting with 9, see eastcoms.com/service/pro/840.html
  "新版外国人永久居留身份证机读信息规则"): the struct ``tagIDCardInfor2023`` in the same
  ``PCSCGetData.h``. It differs from 2017: it follows the resident layout (Chinese
  name, sex, birth date, number and validity at the resident offsets), the English
  name is split in two (35 + 11 characters), and it carries a renewal count and a link
  to the holder's previous 15-character number. We decode it into the same
  ``foreign_permanent`` card type; ``type_flag`` tells the two apart.
- HK/Macau/Taiwan residence permit (type flag ``J``): the struct ``tagIDCardInfor`` in
  the same ``PCSCGetData.h`` (resident offsets, then pass number 18 bytes at 220,
  issue count 4 at 238, type flag at 248), matching a public C# reader wrapper that
  reads ``Encoding.Unicode.GetString(msg, 220, 18)`` (pass number) and ``(msg, 238,
  4)`` (issue count). The governing spec is the GA "港澳台居民居住证机读信息规范"
  (described by the Ministry's test centre, wtabcd.cn/falv/fa/78/122551.html); we did
  not find its full text.
- ID number checksum: GB 11643-1999 (weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2,
  sum mod 11 indexes "10X98765432").

The photo is a 1024-byte wlt image; turning it into a bitmap needs the licensed decoder
library of the SAM vendor, so the driver hands the raw bytes on untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import reduce
from operator import xor
from typing import Literal

import serial

from devices.messages import Identity
from drivers.errors import DeviceUnavailable, DriverError, ProtocolError
from drivers.serial_port import open_serial

log = logging.getLogger(__name__)

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
MIN_LENGTH = 3
"""LEN of the shortest frame: a request's CMD PARA, then CHK."""
MAX_LENGTH = 2600
"""LEN of the longest frame worth waiting for: a 30 10 read (text 256, photo 1024,
fingerprints 1024, three lengths, status, CHK) is 2314. Anything longer is garbage that
happens to follow a preamble, and waiting for it would stall the line."""

FIND = b"\x20\x01"
SELECT = b"\x20\x02"
READ = b"\x30\x01"

SW_SUCCESS = 0x90
SW_FOUND = 0x9F
SW_NO_CARD = 0x80
SW_SELECT_FAILED = 0x81
SW_READ_FAILED = 0x41

TEXT_LENGTH = 256
TYPE_FLAG_OFFSET = 248
"""Where every layout keeps its card-type character (two bytes, UCS-2)."""

CardType = Literal["resident", "foreign_permanent", "hk_macau_taiwan"]

LONG_TERM = "长期"
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_IDENTITY_NUMBER = re.compile(r"[0-9A-Za-z]{6,32}")
_IDENTITY_NAME_MAX = 100
_FOREIGN_2017_NUMBER = re.compile(r"[A-Z]{3}[0-9]{12}")
"""The 2017 foreign card's number: three letters (nationality) and twelve digits."""


def checksum(data: bytes) -> int:
    """XOR of every byte from LEN to the end of DATA."""
    return reduce(xor, data, 0)


def encode_frame(payload: bytes) -> bytes:
    """``payload`` is CMD PARA DATA (a request) or SW1 SW2 SW3 DATA (a response)."""
    length = len(payload) + 1
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"a frame's LEN must be {MIN_LENGTH}..{MAX_LENGTH}, not {length}")
    body = length.to_bytes(2, "big") + payload
    return PREAMBLE + body + bytes([checksum(body)])


@dataclass(frozen=True)
class Frame:
    """One checked frame; ``payload`` is everything between LEN and CHK."""

    payload: bytes

    @property
    def sw3(self) -> int | None:
        """The status of a response, None for a frame too short to be one."""
        return self.payload[2] if len(self.payload) >= 3 else None

    @property
    def data(self) -> bytes:
        """A response's DATA, after SW1 SW2 SW3."""
        return self.payload[3:]


class FrameParser:
    """Cuts a byte stream into checked frames, whatever noise it carries.

    A candidate starts at a preamble. One with an impossible length or a bad checksum is
    dropped by skipping its first byte only, so a real frame hiding inside it is still
    found. While a candidate waits for more bytes, a complete valid frame further on
    means the candidate was a stray preamble (a line reset mid-frame): it is dropped at
    once instead of swallowing the frames after it.

    The price: a long frame whose DATA itself holds a complete valid frame (preamble,
    length and checksum all right, about 2^-48 per position in a random photo) is cut at
    that inner frame when it arrives in pieces. The other way round, a damaged frame
    whose checksum still matches (1 in 256) comes out as a frame and hides what it
    overlaps. ``IdCardReader`` resets the parser before every request and checks each
    answer's status and lengths, so neither reaches a caller as a card.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.dropped = 0
        """Candidate frames thrown away: impossible length, bad checksum, or cut short."""
        self.bad_checksums = 0
        """Of those, the ones whose checksum failed: a device answering, but garbled."""
        self.skipped_bytes = 0
        """Bytes discarded as noise, dropped frames included."""

    def reset(self) -> None:
        """Forget a half-received frame (stale bytes from before a new request)."""
        self.skipped_bytes += len(self._buffer)
        self._buffer.clear()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while True:
            start = self._buffer.find(PREAMBLE)
            if start < 0:
                self._discard(self._keepable_tail())
                return frames
            self._discard(start)
            outcome = self._candidate(0)
            if isinstance(outcome, Frame):
                frames.append(outcome)
                del self._buffer[: len(PREAMBLE) + 2 + len(outcome.payload) + 1]
            elif outcome == "bad":
                self._discard(1)
            else:
                later = self._next_complete_frame()
                if later is None:
                    return frames
                self.dropped += 1
                log.warning("id card reader: dropped a frame cut short by a new one")
                self._discard(later)

    def _candidate(self, at: int) -> Frame | Literal["bad", "incomplete"]:
        """What the bytes at ``at`` (a preamble) are: a frame, garbage, or not there yet."""
        head = at + len(PREAMBLE)
        if len(self._buffer) < head + 2:
            return "incomplete"
        length = int.from_bytes(self._buffer[head : head + 2], "big")
        if not MIN_LENGTH <= length <= MAX_LENGTH:
            if at == 0:
                self.dropped += 1
                log.debug("id card reader: skipped a preamble with impossible LEN %d", length)
            return "bad"
        end = head + 2 + length
        if len(self._buffer) < end:
            return "incomplete"
        body = bytes(self._buffer[head : end - 1])
        if checksum(body) != self._buffer[end - 1]:
            if at == 0:
                self.dropped += 1
                self.bad_checksums += 1
                log.warning("id card reader: dropped a frame with a bad checksum")
            return "bad"
        return Frame(body[2:])

    def _next_complete_frame(self) -> int | None:
        position = self._buffer.find(PREAMBLE, 1)
        while position >= 0:
            if isinstance(self._candidate(position), Frame):
                return position
            position = self._buffer.find(PREAMBLE, position + 1)
        return None

    def _keepable_tail(self) -> int:
        """How many bytes to discard when no preamble is buffered: all but a tail that
        could be the start of one."""
        for keep in range(min(len(PREAMBLE) - 1, len(self._buffer)), 0, -1):
            if self._buffer.endswith(PREAMBLE[:keep]):
                return len(self._buffer) - keep
        return len(self._buffer)

    def _discard(self, count: int) -> None:
        if count:
            self.skipped_bytes += count
            del self._buffer[:count]


# ------------------------------------------------------------------- ID numbers


def id_number_valid(number: str) -> bool:
    """GB 11643: 17 digits, a real birth date at 7..14, and the check character.

    Holds for resident cards, HK/Macau/Taiwan permits (81/82/83 address codes) and the
    2023 foreign permanent-resident card (first digit 9). A lowercase x is accepted.
    """
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        return False
    try:
        born = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if born.year < 1800 or born > datetime.date.today():
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _WEIGHTS, strict=True))
    return number[17].upper() == _CHECK_CHARS[total % 11]


# ------------------------------------------------------------------------ cards


def _mask(value: str | None) -> str:
    return "None" if value is None else "'***'"


@dataclass(frozen=True, repr=False)
class IdCard:
    """What a card's chip says, decoded; codes stay codes (GB 3304 nation, GB/T 2261.1
    sex, GB/T 2659 nationality) for the server to name.

    ``photo_wlt`` is the chip's raw wlt image: decoding it needs the SAM vendor's
    licensed library, which the kiosk may or may not have; the driver keeps the bytes.
    ``name`` is the Chinese name, or the English name on a foreign card that has none.
    The optional fields exist on some layouts only: ``english_name``, ``card_version``
    (2017 foreign card), ``renewal_count`` and ``previous_number`` (2023 foreign card),
    ``pass_number`` and ``issue_count`` (HK/Macau/Taiwan permit). ``type_flag`` is the
    chip's card-type character: "" resident, "I" foreign 2017, "Y" foreign 2023, "J"
    HK/Macau/Taiwan. On the 2017 foreign card ``authority`` is the accepting office's
    code; the 2023 card carries none.

    ``repr`` masks the personal data, so a card can be logged.
    """

    card_type: CardType
    name: str
    sex: str
    nation: str
    birth_date: datetime.date
    address: str
    id_number: str
    authority: str
    valid_from: datetime.date
    valid_to: datetime.date | None
    photo_wlt: bytes
    english_name: str | None = None
    pass_number: str | None = None
    issue_count: str | None = None
    card_version: str | None = None
    renewal_count: str | None = None
    previous_number: str | None = None
    type_flag: str = ""

    def __repr__(self) -> str:
        return (
            f"IdCard(card_type={self.card_type!r}, type_flag={self.type_flag!r}, "
            f"name='***', id_number='***', address='***', "
            f"english_name={_mask(self.english_name)}, pass_number={_mask(self.pass_number)}, "
            f"valid_to={self.valid_to!r}, photo_wlt=<{len(self.photo_wlt)} bytes>)"
        )

    __str__ = __repr__

    def identity(self) -> Identity:
        """The holder as the bus carries it (``card.read``); raises ValueError for a
        number the bus would refuse."""
        if not _IDENTITY_NUMBER.fullmatch(self.id_number):
            raise ValueError("the card's number does not fit the bus's id_number pattern")
        name = self.name[:_IDENTITY_NAME_MAX] or None
        return Identity(name=name, id_number=self.id_number)


class _Text:
    """The text block, read field by field as UCS-2 LE."""

    def __init__(self, block: bytes) -> None:
        self.block = block

    def raw(self, offset: int, size: int) -> str:
        return self.block[offset : offset + size].decode("utf-16-le", errors="replace")

    def field(self, offset: int, size: int) -> str:
        return self.raw(offset, size).rstrip(" \x00")

    def date(self, offset: int, what: str) -> datetime.date:
        value = self.field(offset, 16)
        try:
            if len(value) != 8 or not value.isdigit():
                raise ValueError(value)
            return datetime.date(int(value[:4]), int(value[4:6]), int(value[6:]))
        except ValueError:
            raise DriverError(f"card text has an unreadable {what}") from None

    def valid_to(self, offset: int) -> datetime.date | None:
        if self.field(offset, 16) == LONG_TERM:
            return None
        return self.date(offset, "end of validity")


def parse_text_block(block: bytes, photo: bytes) -> IdCard:
    """The card a text block describes; raises DriverError for a block no layout fits."""
    if len(block) != TEXT_LENGTH:
        raise ProtocolError(f"card text is {len(block)} bytes, not {TEXT_LENGTH}")
    text = _Text(block)
    flag = text.field(TYPE_FLAG_OFFSET, 2)
    if flag == "I":
        card = _foreign_2017(text, photo)
    elif flag == "Y":
        card = _foreign_2023(text, photo)
    elif flag == "J":
        card = _hk_macau_taiwan(text, photo)
    else:
        card = _resident(text, photo)
    if flag == "I":
        if not _FOREIGN_2017_NUMBER.fullmatch(card.id_number):
            raise DriverError("card text has an unreadable permit number")
    elif not id_number_valid(card.id_number):
        raise DriverError("card text has an ID number that fails the GB 11643 check")
    return card


def _resident(text: _Text, photo: bytes) -> IdCard:
    return IdCard(
        card_type="resident",
        name=text.field(0, 30),
        sex=text.field(30, 2),
        nation=text.field(32, 4),
        birth_date=text.date(36, "birth date"),
        address=text.field(52, 70),
        id_number=text.field(122, 36),
        authority=text.field(158, 30),
        valid_from=text.date(188, "start of validity"),
        valid_to=text.valid_to(204),
        photo_wlt=photo,
    )


def _hk_macau_taiwan(text: _Text, photo: bytes) -> IdCard:
    return IdCard(
        card_type="hk_macau_taiwan",
        name=text.field(0, 30),
        sex=text.field(30, 2),
        nation="",
        birth_date=text.date(36, "birth date"),
        address=text.field(52, 70),
        id_number=text.field(122, 36),
        authority=text.field(158, 30),
        valid_from=text.date(188, "start of validity"),
        valid_to=text.valid_to(204),
        photo_wlt=photo,
        pass_number=text.field(220, 18),
        issue_count=text.field(238, 4),
        type_flag="J",
    )


def _foreign_2017(text: _Text, photo: bytes) -> IdCard:
    english = text.field(0, 120)
    chinese = text.field(158, 30)
    return IdCard(
        card_type="foreign_permanent",
        name=chinese or english,
        sex=text.field(120, 2),
        nation=text.field(152, 6),
        birth_date=text.date(220, "birth date"),
        address="",
        id_number=text.field(122, 30),
        authority=text.field(240, 8),
        valid_from=text.date(188, "start of validity"),
        valid_to=text.valid_to(204),
        photo_wlt=photo,
        english_name=english,
        card_version=text.field(236, 4),
        type_flag="I",
    )


def _foreign_2023(text: _Text, photo: bytes) -> IdCard:
    english = (text.raw(52, 70) + text.raw(220, 22)).rstrip(" \x00")
    chinese = text.field(0, 30)
    return IdCard(
        card_type="foreign_permanent",
        name=chinese or english,
        sex=text.field(30, 2),
        nation=text.field(242, 6),
        birth_date=text.date(36, "birth date"),
        address="",
        id_number=text.field(122, 36),
        authority="",
        valid_from=text.date(188, "start of validity"),
        valid_to=text.valid_to(204),
        photo_wlt=photo,
        english_name=english,
        renewal_count=text.field(32, 4),
        previous_number=text.field(250, 6),
        type_flag="Y",
    )


def parse_read_data(data: bytes) -> IdCard:
    """The DATA of a 30 01 response: text length, photo length (both BE), text, photo."""
    if len(data) < 4:
        raise ProtocolError(f"read answer has {len(data)} data bytes, too few for lengths")
    text_length = int.from_bytes(data[:2], "big")
    photo_length = int.from_bytes(data[2:4], "big")
    if len(data) != 4 + text_length + photo_length:
        raise ProtocolError(
            f"read answer has {len(data) - 4} bytes, its lengths say "
            f"{text_length} + {photo_length}"
        )
    return parse_text_block(data[4 : 4 + text_length], data[4 + text_length :])


# ----------------------------------------------------------------------- reader


class IdCardReader:
    """One reader on one serial line.

    Every call is a request and its answer; a reader that does not answer within
    ``timeout`` (or whose port errors) raises DeviceUnavailable and closes, so the agent
    reports it offline and calls ``open`` again later. A garbled answer is asked for
    once more before ProtocolError.
    """

    RETRIES = 1

    def __init__(self, url: str, *, baudrate: int = 115200, timeout: float = 1.0) -> None:
        self.url = url
        self.baudrate = baudrate
        self.timeout = timeout
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._parser = FrameParser()
        self._lock = asyncio.Lock()

    @property
    def is_open(self) -> bool:
        return self._streams is not None

    async def open(self) -> None:
        if self._streams is None:
            self._streams = await open_serial(self.url, self.baudrate)
            self._parser = FrameParser()

    async def close(self) -> None:
        streams, self._streams = self._streams, None
        if streams is None:
            return
        writer = streams[1]
        writer.close()
        with contextlib.suppress(OSError, serial.SerialException, asyncio.TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()

    async def __aenter__(self) -> IdCardReader:
        await self.open()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def read_card(self) -> IdCard | None:
        """Find, select, read. None when no card lies on the reader (or it was taken
        away halfway); DriverError for a card that is there but cannot be read."""
        async with self._lock:
            found = await self._transact(FIND)
            if found.sw3 == SW_NO_CARD:
                return None
            self._expect(found, SW_FOUND, "find")
            selected = await self._transact(SELECT)
            if selected.sw3 == SW_NO_CARD:
                return None
            if selected.sw3 == SW_SELECT_FAILED:
                raise DriverError("the reader found a card but could not select it")
            self._expect(selected, SW_SUCCESS, "select")
            read = await self._transact(READ)
            if read.sw3 == SW_NO_CARD:
                return None
            if read.sw3 == SW_READ_FAILED:
                raise DriverError("the reader could not read the card (status 0x41)")
            self._expect(read, SW_SUCCESS, "read")
            return parse_read_data(read.data)

    async def watch(self, interval: float = 0.3) -> AsyncIterator[IdCard]:
        """Each card once per placement: a card left on the reader is not yielded again
        until a poll has seen the reader empty. A card that cannot be read is logged
        and polled again. DeviceUnavailable ends the iteration; reopen and watch again."""
        current: tuple[str, str] | None = None
        while True:
            try:
                card = await self.read_card()
            except DeviceUnavailable:
                raise
            except DriverError as error:
                log.warning("id card reader %s: %s", self.url, error)
            else:
                if card is None:
                    current = None
                elif (card.card_type, card.id_number) != current:
                    current = (card.card_type, card.id_number)
                    yield card
            await asyncio.sleep(interval)

    @staticmethod
    def _expect(frame: Frame, status: int | None, step: str) -> None:
        if frame.sw3 != status:
            shown = "none" if frame.sw3 is None else f"0x{frame.sw3:02X}"
            raise DriverError(f"the reader answered {step} with status {shown}")

    async def _transact(self, command: bytes) -> Frame:
        if self._streams is None:
            raise DeviceUnavailable(f"id card reader {self.url} is not open")
        reader, writer = self._streams
        for attempt in range(self.RETRIES + 1):
            try:
                await self._drain_stale(reader)
                garbled = self._parser.bad_checksums
                writer.write(encode_frame(command))
                await writer.drain()
                frame = await self._answer(reader, garbled)
            except TimeoutError:
                await self.close()
                raise DeviceUnavailable(
                    f"id card reader {self.url} did not answer within {self.timeout} s"
                ) from None
            except (OSError, serial.SerialException, ConnectionError) as error:
                await self.close()
                raise DeviceUnavailable(f"id card reader {self.url} is gone: {error}") from error
            if frame is not None:
                return frame
            log.warning("id card reader %s: garbled answer (attempt %d)", self.url, attempt + 1)
        raise ProtocolError(f"id card reader {self.url} keeps answering with bad checksums")

    async def _answer(self, reader: asyncio.StreamReader, garbled: int) -> Frame | None:
        """The first frame that can be a response, or None once a garbled one came."""
        async with asyncio.timeout(self.timeout):
            while True:
                data = await reader.read(4096)
                if not data:
                    raise ConnectionError("end of file on the serial line")
                for frame in self._parser.feed(data):
                    if frame.sw3 is not None:
                        return frame
                if self._parser.bad_checksums != garbled:
                    return None

    async def _drain_stale(self, reader: asyncio.StreamReader) -> None:
        """Throw away what arrived unasked (a late answer to a timed-out request), so it
        cannot pass for the answer to the next one."""
        self._parser.reset()
        while True:
            try:
                async with asyncio.timeout(0):
                    data = await reader.read(4096)
            except TimeoutError:
                return
            if not data:
                return
            self._parser.skipped_bytes += len(data)
