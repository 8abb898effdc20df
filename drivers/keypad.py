"""Wireless call keypads (D9) and evaluation keypads (D10) behind a 433 MHz receiver.

The keypads are fixed-code 433 MHz remotes (EV1527 encoders, or PT2262-compatible);
the receiver decodes their radio frames and reports each one on a serial line. There
is no one standard for that report; this driver speaks the UART protocol of the ITEAD
Sonoff RF Bridge 433 receiver (its EFM8BB1 radio MCU), which is publicly documented and
implemented by several independent projects:

- Portisch/RF-Bridge-EFM8BB1, README: the original commands 0xA0-0xA5 and the byte
  example ``AA A5 24 E0 01 40 03 84 D0 03 58 55`` (Tsyn 0x24E0, Tlow 0x0140,
  Thigh 0x0384, 24-bit data 0xD00358);
- esphome ``components/rf_bridge/rf_bridge.cpp`` and Tasmota ``xdrv_06_snfbridge``:
  19200 baud 8N1; the receiver sends ``AA A4`` + Tsyn(2) Tlow(2) Thigh(2) + code(3) +
  ``55`` for every code it hears (``A3``, same layout, when a learn succeeded; ``A0``,
  ``A2`` three-byte acknowledgements), and the host answers each code with the ACK
  ``AA A0 55``. Times are big-endian microseconds.

The 24-bit code of an EV1527 remote is its 20-bit address (fixed at the factory; the
"learned id" of a hall's keypad) followed by 4 data bits, one per key line (EV1527
datasheet; rtl_433 ``generic_remote.c`` splits it the same way). ``KeyPress.keypad`` is
the 20-bit address as five hex digits, ``KeyPress.key`` the 4-bit key code (0-15).

The protocol has no checksum. A frame is taken when its start, type, length and end
byte are right and its pulse times are ordered as an OOK remote's are
(Tlow < Thigh < Tsyn); the time check is this driver's own guard against noise, not
part of the protocol. A partial frame is dropped after 50 ms of silence, as esphome
does (a frame takes 6 ms at 19200 baud).

Not found in readable form: the "FD … DF" frame of the cheap Chinese 433 MHz serial
decoder modules, and any queue-system vendor's caller receiver protocol.

A held button repeats its code for as long as it is held; ``KeypadReceiver`` reports
one ``KeyPress`` per press and drops repeats that follow within ``debounce`` seconds.
``CallKeymap`` and ``EvaluationKeymap`` turn key codes into the hall's requests
(``devices.messages``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias, assert_never, get_args

import serial

from devices import messages
from drivers.errors import DeviceUnavailable, DriverError
from drivers.serial_port import open_serial

log = logging.getLogger(__name__)

START: Final = 0xAA
END: Final = 0x55
ACK: Final = 0xA0
LEARN_TIMEOUT: Final = 0xA2
LEARN_OK: Final = 0xA3
RF_IN: Final = 0xA4
CODE_FRAME_SIZE: Final = 12
"""START, action, 9 data bytes, END."""
SHORT_FRAME_SIZE: Final = 3
ACK_FRAME: Final = bytes((START, ACK, END))
BAUDRATE: Final = 19200
SILENCE_RESET: Final = 0.05
"""Seconds of silence after which a partial frame is noise."""

_CODE_FRAMES = frozenset({LEARN_OK, RF_IN})
_SHORT_FRAMES = frozenset({ACK, LEARN_TIMEOUT})


@dataclass(frozen=True)
class RfFrame:
    """One frame from the receiver: ``action`` says what it reports."""

    action: int
    sync: int = 0
    low: int = 0
    high: int = 0
    code: int = 0

    @property
    def address(self) -> int:
        """The remote's 20-bit EV1527 address."""
        return self.code >> 4

    @property
    def key(self) -> int:
        """The 4 data bits: which key (or key combination) is down."""
        return self.code & 0x0F


def _plausible(sync: int, low: int, high: int) -> bool:
    return 0 < low < high < sync


class RfBridgeParser:
    """Bytes in, frames out; garbage is skipped byte by byte until a frame fits."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.skipped = 0

    def reset(self) -> None:
        if self._buffer:
            self.skipped += len(self._buffer)
            log.debug("keypad receiver: dropped %d bytes of a partial frame", len(self._buffer))
        self._buffer.clear()

    def feed(self, data: bytes) -> list[RfFrame]:
        self._buffer += data
        frames: list[RfFrame] = []
        buffer = self._buffer
        while buffer:
            if buffer[0] != START:
                start = buffer.find(START)
                dropped = len(buffer) if start < 0 else start
                self._skip(dropped)
                continue
            if len(buffer) < 2:
                break
            action = buffer[1]
            if action in _SHORT_FRAMES:
                if len(buffer) < SHORT_FRAME_SIZE:
                    break
                if buffer[2] == END:
                    frames.append(RfFrame(action))
                    del buffer[:SHORT_FRAME_SIZE]
                else:
                    self._skip(1)
                continue
            if action not in _CODE_FRAMES:
                self._skip(1)
                continue
            if len(buffer) < CODE_FRAME_SIZE:
                break
            sync = int.from_bytes(buffer[2:4], "big")
            low = int.from_bytes(buffer[4:6], "big")
            high = int.from_bytes(buffer[6:8], "big")
            code = int.from_bytes(buffer[8:11], "big")
            if buffer[11] != END or not _plausible(sync, low, high):
                self._skip(1)
                continue
            frames.append(RfFrame(action, sync, low, high, code))
            del buffer[:CODE_FRAME_SIZE]
        return frames

    def _skip(self, count: int) -> None:
        self.skipped += count
        log.debug("keypad receiver: skipped %d bytes of noise", count)
        del self._buffer[:count]


# ------------------------------------------------------------------- receiver


@dataclass(frozen=True)
class KeyPress:
    keypad: str
    """The keypad's 20-bit address as five upper-case hex digits, e.g. ``"D0035"``."""
    key: int
    """The key code, 0-15."""
    at: float
    """Loop time of the first frame of the press."""


def keypad_id(address: int) -> str:
    return f"{address:05X}"


class KeypadReceiver:
    """The receiver on one serial line: every keypad it hears, as ``KeyPress``es."""

    def __init__(self, url: str, *, baudrate: int = BAUDRATE, debounce: float = 0.3) -> None:
        self.url = url
        self.baudrate = baudrate
        self.debounce = debounce
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = RfBridgeParser()
        self._last: dict[tuple[int, int], float] = {}

    @property
    def skipped(self) -> int:
        """Bytes of noise skipped so far."""
        return self._parser.skipped

    async def open(self) -> None:
        await self.close()
        self._reader, self._writer = await open_serial(self.url, self.baudrate)
        self._parser = RfBridgeParser()
        self._last.clear()

    async def close(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is None:
            return
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (OSError, serial.SerialException, TimeoutError):
            log.debug("keypad receiver %s closed with an error", self.url, exc_info=True)

    async def presses(self) -> AsyncIterator[KeyPress]:
        """Key presses as they come; ``DeviceUnavailable`` when the receiver is gone."""
        loop = asyncio.get_running_loop()
        last_data = loop.time()
        while True:
            reader, writer = self._reader, self._writer
            if reader is None or writer is None:
                raise DeviceUnavailable(f"keypad receiver {self.url} is not open")
            try:
                data = await reader.read(256)
            except (OSError, serial.SerialException) as error:
                await self.close()
                raise DeviceUnavailable(f"keypad receiver {self.url} is gone: {error}") from error
            if not data:
                await self.close()
                raise DeviceUnavailable(f"keypad receiver {self.url} closed the line")
            now = loop.time()
            if now - last_data > SILENCE_RESET:
                self._parser.reset()
            last_data = now
            for frame in self._parser.feed(data):
                if frame.action not in _CODE_FRAMES:
                    continue
                await self._ack(writer)
                if frame.action == RF_IN and self._fresh(frame, now):
                    yield KeyPress(keypad_id(frame.address), frame.key, now)

    def _fresh(self, frame: RfFrame, now: float) -> bool:
        """A repeat of the same key within ``debounce`` of the last frame is the same
        press: the window slides, so a held key stays one press however long."""
        key = (frame.address, frame.key)
        last = self._last.get(key)
        self._last[key] = now
        if len(self._last) > 1024:
            horizon = now - self.debounce
            self._last = {k: t for k, t in self._last.items() if t >= horizon}
        return last is None or now - last > self.debounce

    async def _ack(self, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(ACK_FRAME)
            await asyncio.wait_for(writer.drain(), 1.0)
        except (OSError, serial.SerialException, TimeoutError) as error:
            await self.close()
            raise DeviceUnavailable(f"keypad receiver {self.url} is gone: {error}") from error


# --------------------------------------------------------------------- keymaps

ActionName: TypeAlias = Literal[
    "call_next",
    "recall",
    "skip",
    "start",
    "finish",
    "pause",
    "resume",
    "evaluate",
    "login",
    "logout",
    "transfer",
]
ACTIONS: Final[frozenset[str]] = frozenset(get_args(ActionName))

DEFAULT_CALL_KEYS: Final[Mapping[int, ActionName]] = {
    1: "call_next",
    2: "recall",
    3: "skip",
    4: "start",
    5: "finish",
    6: "pause",
    7: "resume",
    8: "evaluate",
}
"""A caller keypad with eight function keys and no digits; a hall's configuration
gives the codes its keypads really send (press each key once and read ``KeyPress.key``)."""

MAX_DIGITS: Final = 8


@dataclass(frozen=True)
class Action:
    """What a key asks for, with what the request needs already resolved."""

    name: ActionName
    staff_id: str | None = None
    window: str | None = None
    reason: str | None = None


@dataclass
class CallKeymap:
    """Key codes of one call keypad to the window's requests (D9). One per keypad: it
    remembers the digits typed so far.

    ``pause_reasons`` are the hall's pause reason codes in configuration order; a
    pause takes the first unless digits were typed before it, which pick the n-th
    (1 = first). Keypads with a number pad map codes to digits in ``digits``: the
    digits typed before ``login`` are the staff number (the staff id), before
    ``transfer`` the target window's number, formatted with ``window_format``
    (``4`` -> ``w04``). A function key always clears the digits, used or not.
    """

    pause_reasons: Sequence[str]
    keys: Mapping[int, ActionName] = field(default_factory=lambda: dict(DEFAULT_CALL_KEYS))
    digits: Mapping[int, int] = field(default_factory=dict)
    window_format: str = "w{:02d}"
    _typed: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.pause_reasons:
            raise ValueError("a call keymap needs the hall's pause reasons")
        unknown = set(self.keys.values()) - ACTIONS
        if unknown:
            raise ValueError(f"unknown keypad actions: {sorted(unknown)}")
        both = set(self.keys) & set(self.digits)
        if both:
            raise ValueError(f"key codes both a digit and an action: {sorted(both)}")
        if any(not 0 <= d <= 9 for d in self.digits.values()):
            raise ValueError("digits are 0 to 9")

    @property
    def typed(self) -> str:
        return self._typed

    def press(self, key: int) -> Action | None:
        """The action of ``key``, or None for a digit or a key that does nothing."""
        if key in self.digits:
            self._typed = (self._typed + str(self.digits[key]))[-MAX_DIGITS:]
            return None
        name = self.keys.get(key)
        typed, self._typed = self._typed, ""
        if name is None:
            log.info("keypad key %d has no action", key)
            return None
        if name == "pause":
            return self._pause(typed)
        if name == "login":
            if not typed:
                log.info("login needs the staff number typed first")
                return None
            return Action("login", staff_id=typed)
        if name == "transfer":
            if not typed:
                log.info("transfer needs the window number typed first")
                return None
            return Action("transfer", window=self.window_format.format(int(typed)))
        return Action(name)

    def _pause(self, typed: str) -> Action | None:
        index = int(typed) - 1 if typed else 0
        if not 0 <= index < len(self.pause_reasons):
            log.info("no pause reason number %s", typed)
            return None
        return Action("pause", reason=self.pause_reasons[index])


def to_request(action: Action, *, request_id: str) -> messages.Request:
    """The ``devices.messages`` request for ``action``, checked as the hall will check
    it (``DriverError`` if it would not pass: a bad request id or staff number)."""
    request: messages.Request
    match action.name:
        case "call_next":
            request = messages.CallNext(id=request_id)
        case "recall":
            request = messages.Recall(id=request_id)
        case "skip":
            request = messages.Skip(id=request_id)
        case "start":
            request = messages.StartService(id=request_id)
        case "finish":
            request = messages.FinishService(id=request_id)
        case "pause":
            if action.reason is None:
                raise DriverError("a pause needs a reason")
            request = messages.Pause(id=request_id, reason=action.reason)
        case "resume":
            request = messages.Resume(id=request_id)
        case "evaluate":
            request = messages.AskEvaluation(id=request_id)
        case "login":
            if action.staff_id is None:
                raise DriverError("a login needs a staff id")
            request = messages.Login(id=request_id, staff_id=action.staff_id)
        case "logout":
            request = messages.Logout(id=request_id)
        case "transfer":
            if action.window is None:
                raise DriverError("a transfer needs a window")
            request = messages.Transfer(id=request_id, window=action.window)
        case _:
            assert_never(action.name)
    return _checked(request)


def _checked(request: messages.Request) -> messages.Request:
    try:
        return messages.decode_request(messages.encode(request))
    except messages.MessageError as error:
        raise DriverError(f"the keypad's request would be refused: {error.message}") from error


DEFAULT_RATINGS: Final[Mapping[int, int]] = {1: 5, 2: 4, 3: 3, 4: 2, 5: 1}
"""An evaluation keypad of five keys, left to right: 非常满意 (5), 满意 (4), 基本满意 (3),
不满意 (2), 非常不满意 (1). Configurations give the codes of their own keypads."""


@dataclass(frozen=True)
class EvaluationKeymap:
    """Key codes of an evaluation keypad to ratings 1-5 (D10)."""

    ratings: Mapping[int, int] = field(default_factory=lambda: dict(DEFAULT_RATINGS))

    def __post_init__(self) -> None:
        if any(not 1 <= r <= 5 for r in self.ratings.values()):
            raise ValueError("ratings are 1 to 5")

    def rating(self, key: int) -> int | None:
        return self.ratings.get(key)

    def to_rate(self, key: int, *, ticket_id: str, request_id: str) -> messages.Rate | None:
        """The rating of ``key`` for the ticket of the ``evaluation.request`` being
        answered, or None for a key that rates nothing."""
        rating = self.rating(key)
        if rating is None:
            return None
        request = _checked(messages.Rate(id=request_id, ticket_id=ticket_id, rating=rating))
        if not isinstance(request, messages.Rate):
            raise DriverError(f"a rating decoded as {type(request).__name__}")
        return request
