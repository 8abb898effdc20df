"""Citizen cards and other contactless/contact smart cards on PC/SC readers (requirement D6).

Sources followed:
- PC/SC Workgroup, Interoperability Specification part 3 (2.02), section 3.2.2.1.3: the
  pseudo-APDU ``GET DATA`` FF CA 00 00 00 that a contactless reader answers with the card's
  UID; readers and contact cards that do not support it answer 6A81 / 6E00 / 6D00.
- ISO/IEC 7816-4: APDU header CLA INS P1 P2 (at least 4 bytes), status words SW1 SW2;
  SW1=61 means "more data, fetch it with GET RESPONSE 00 C0 00 00 Le", SW1=6C means
  "wrong Le, repeat with Le=SW2" (T=0 transport, ISO/IEC 7816-3).
- pyscard 2.3 (https://pyscard.sourceforge.io/): ``smartcard.System.readers``,
  ``CardMonitor``/``CardObserver`` and ``ReaderMonitor``/``ReaderObserver``.

pyscard's monitors run in their own threads and call observers there; the observers here
only hand the event to the event loop with ``call_soon_threadsafe``. Every PC/SC call that
can block (connect, transmit, listing readers) runs on a daemon thread of its own and is
given up after ``answer_timeout`` (``_pcsc_call``): pcsc-lite waits for pcscd without a
limit, so a call into a pcscd that stopped answering never returns and no signal
interrupts it. On asyncio's executor such a thread would also hold up the loop's shutdown
and the process's exit for good (Python 3.11 joins those threads without a limit); the
reader is reported unavailable instead and the agent reopens it with backoff.

pyscard pitfalls this module works around:
- ``CardMonitor`` is a process-wide singleton whose thread stops for good when pcscd goes
  away (SCARD_E_NO_SERVICE); a new ``CardMonitor()`` would hand back the dead one. Before
  reuse the dead singleton is dropped so a restarted pcscd is watched again.
- ``ReaderMonitor`` keeps shared state that each ``ReaderMonitor()`` call resets (observers
  and the thread reference are lost), so one instance is made per process and shared.
- An exception raised in an observer kills the monitor thread, so observers never raise.
- Both monitor threads are daemon threads; ``CardMonitor``'s waits in SCardGetStatusChange
  for up to 60 s and cannot be interrupted, which is harmless for a daemon thread and is
  why ``close`` does not join it.

Reader gone: ``watch`` raises ``DeviceUnavailable`` when the reader is missing at start,
when it is unplugged, or when pcscd stops; the edge agent reopens it with backoff, as for
every other device. A card already in the reader when ``watch`` starts counts as inserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import tomllib
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from smartcard.CardMonitoring import CardMonitor, CardMonitoringThread, CardObserver
from smartcard.Exceptions import SmartcardException
from smartcard.pcsc.PCSCExceptions import BaseSCardException
from smartcard.ReaderMonitoring import ReaderMonitor, ReaderObserver
from smartcard.System import readers as list_readers

from drivers.errors import DeviceUnavailable, DriverError

log = logging.getLogger(__name__)

SW_OK = b"\x90\x00"
GET_UID = bytes.fromhex("FFCA000000")
# pyscard raises two unrelated families: SmartcardException from connections and monitors,
# BaseSCardException from context and reader-list calls (pcscd gone, for one).
PCSC_ERRORS = (SmartcardException, BaseSCardException)
MAX_RESPONSE_CHAIN = 64
# pcscd answers in milliseconds (a whole citizen-card script in ~0.3 s here); one that has
# not answered in this long is stuck, and the call would never return.
PCSC_ANSWER_S = 10.0


@dataclass(frozen=True)
class ApduStep:
    name: str
    apdu: bytes
    expect_sw: bytes = SW_OK


def _hex(value: object, what: str, step: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"APDU step {step!r}: {what} must be a hex string, got {value!r}")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise ValueError(f"APDU step {step!r}: {what} is not valid hex: {value!r}") from None


def _step(index: int, entry: object, seen: set[str]) -> ApduStep:
    label = f"#{index + 1}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"APDU step {label}: expected a table, got {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"APDU step {label}: needs a non-empty name")
    if name in seen:
        raise ValueError(f"APDU step {name!r}: name used twice")
    unknown = set(entry) - {"name", "apdu", "expect_sw"}
    if unknown:
        raise ValueError(f"APDU step {name!r}: unknown keys {sorted(unknown)}")
    apdu = _hex(entry.get("apdu"), "apdu", name)
    if len(apdu) < 4:
        raise ValueError(f"APDU step {name!r}: an APDU has at least CLA INS P1 P2 (4 bytes)")
    expect_sw = _hex(entry.get("expect_sw", "9000"), "expect_sw", name)
    if len(expect_sw) != 2:
        raise ValueError(f"APDU step {name!r}: expect_sw must be 2 bytes (SW1 SW2)")
    seen.add(name)
    return ApduStep(name, apdu, expect_sw)


def parse_script(text_or_list: str | Sequence[Mapping[str, Any]]) -> list[ApduStep]:
    """Config to steps, failing at load time (ValueError naming the step) rather than at
    the first citizen's card. Text is TOML: either the bare array
    ``[{name="select_app", apdu="00A4040C07A0000000031010"}, ...]`` or a document with a
    ``script`` array (``[[script]]`` tables)."""
    entries: object
    if isinstance(text_or_list, str):
        source = text_or_list.strip()
        bare_array = re.match(r"\[\s*[{\]]", source) is not None
        document = f"script = {source}" if bare_array else source
        try:
            entries = tomllib.loads(document).get("script", [])
        except tomllib.TOMLDecodeError as error:
            raise ValueError(f"APDU script is not valid TOML: {error}") from None
    else:
        entries = text_or_list
    if not isinstance(entries, Sequence) or isinstance(entries, str | bytes):
        raise ValueError(f"APDU script must be a list of steps, got {entries!r}")
    seen: set[str] = set()
    return [_step(index, entry, seen) for index, entry in enumerate(entries)]


@dataclass(frozen=True)
class CardRead:
    reader: str
    atr: bytes
    uid: bytes | None
    responses: dict[str, bytes] = field(default_factory=dict)
    failures: dict[str, bytes] = field(default_factory=dict)

    def __repr__(self) -> str:
        # Responses carry the citizen's data (name, ID number...): logs get their sizes only.
        masked = {name: f"<{len(data)} bytes>" for name, data in self.responses.items()}
        failures = {name: sw.hex() for name, sw in self.failures.items()}
        uid = None if self.uid is None else self.uid.hex()
        return (
            f"CardRead(reader={self.reader!r}, atr={self.atr.hex()!r}, uid={uid!r}, "
            f"responses={masked!r}, failures={failures!r})"
        )


Event = tuple[str, str]
T = TypeVar("T")
_SHARED_READER_MONITOR: ReaderMonitor | None = None
_MONITOR_LOCK = threading.Lock()


def _readers_or_none() -> list[Any]:
    """The reader list for ReaderMonitor's thread. pyscard's thread only survives
    SmartcardException and dies on the EstablishContextException raised when pcscd is gone;
    an empty list instead reports every reader removed, which is what the agent must hear,
    and the thread keeps polling so the readers come back with pcscd."""
    try:
        return list(list_readers())
    except PCSC_ERRORS:
        return []


async def _pcsc_call(timeout: float, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` on a daemon thread; DeviceUnavailable when pcscd has not answered
    within ``timeout`` s (the thread is left to return whenever it does)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = call(*args), None
        except BaseException as raised:  # handed to the awaiting task, which re-raises
            result, error = None, raised
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    name = getattr(call, "__name__", "call")
    threading.Thread(target=run, name=f"pcsc {name}", daemon=True).start()
    try:
        return await asyncio.wait_for(answer, timeout)
    except TimeoutError:
        raise DeviceUnavailable(
            f"pcscd did not answer {name} within {timeout:g} s (stuck or overloaded)"
        ) from None


def _reader_monitor(period: float) -> ReaderMonitor:
    global _SHARED_READER_MONITOR
    with _MONITOR_LOCK:
        if _SHARED_READER_MONITOR is None:
            _SHARED_READER_MONITOR = ReaderMonitor(readerProc=_readers_or_none, period=period)
        return _SHARED_READER_MONITOR


def _card_monitor() -> CardMonitor:
    with _MONITOR_LOCK:
        thread = CardMonitoringThread.instance
        if thread is not None and not thread.is_alive():
            log.info("pyscard card monitor had stopped (pcscd went away); starting a new one")
            request = getattr(thread, "cardrequest", None)
            inner = getattr(request, "pcsccardrequest", None)
            if inner is not None:
                # Its context died with the old pcscd: releasing it would raise in __del__.
                inner.hcontext = None
            CardMonitoringThread.instance = None
            CardMonitor.instance = None
        return CardMonitor()


def _card_monitor_alive() -> bool:
    thread = CardMonitoringThread.instance
    return thread is not None and bool(thread.is_alive())


class _Bridge(CardObserver, ReaderObserver):  # type: ignore[misc]
    """Runs in pyscard's monitor threads: forwards events to the loop, never raises."""

    def __init__(self, loop: asyncio.AbstractEventLoop, put: Callable[[Event], None]) -> None:
        self._loop = loop
        self._put = put
        self.reader_name = ""

    def update(self, observable: object, handlers: tuple[list[Any], list[Any]]) -> None:
        try:
            added, removed = handlers
            for item in added:
                name = str(getattr(item, "reader", item))
                kind = "inserted" if hasattr(item, "atr") else "reader_added"
                if name == self.reader_name:
                    self._loop.call_soon_threadsafe(self._put, (kind, name))
            for item in removed:
                name = str(getattr(item, "reader", item))
                kind = "removed" if hasattr(item, "atr") else "reader_removed"
                if name == self.reader_name:
                    self._loop.call_soon_threadsafe(self._put, (kind, name))
        except RuntimeError:
            pass  # the loop is closed: nobody is watching any more
        except Exception:
            log.exception("PC/SC event could not be forwarded")


def _release(connection: Any) -> None:
    """Disconnect and free the connection's own PC/SC context now, not in ``__del__``,
    where a failure (pcscd gone) would surface as an unraisable exception."""
    try:
        connection.release()
    except PCSC_ERRORS as error:
        log.debug("releasing the PC/SC connection failed: %s", error)
        connection.hcard = None
        connection.hcontext = None


def _status(sw1: int, sw2: int) -> bytes:
    return bytes([sw1, sw2])


class PcscReader:
    """One PC/SC reader, chosen by a substring of its name (None: the first one)."""

    def __init__(
        self,
        reader: str | None = None,
        *,
        script: Sequence[ApduStep] = (),
        poll: float = 0.2,
        answer_timeout: float = PCSC_ANSWER_S,
    ) -> None:
        self._wanted = reader
        self._script = tuple(script)
        self._poll = poll
        self._answer_timeout = answer_timeout
        self._name: str | None = None
        self._connection: Any = None
        self._lock = threading.Lock()
        self._queue: asyncio.Queue[Event] | None = None
        self._closed = False

    @property
    def name(self) -> str | None:
        return self._name

    # --- blocking side (runs in worker threads) ---------------------------------------

    def _find_reader(self) -> Any:
        try:
            available = list_readers()
        except PCSC_ERRORS as error:
            raise DeviceUnavailable(
                f"PC/SC service unavailable (is pcscd running?): {error}"
            ) from None
        for reader in available:
            if self._wanted is None or self._wanted in str(reader):
                return reader
        names = [str(reader) for reader in available]
        raise DeviceUnavailable(f"no PC/SC reader matching {self._wanted!r} among {names}")

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            _release(connection)

    def _connect(self) -> Any:
        reader = self._find_reader()
        self._name = str(reader)
        connection = reader.createConnection()
        try:
            connection.connect()
        except PCSC_ERRORS as error:
            _release(connection)
            raise DriverError(f"no card in {self._name}: {error}") from None
        self._connection = connection
        return connection

    def _exchange(self, connection: Any, apdu: bytes) -> tuple[bytes, bytes]:
        """One command with T=0 status handling (61xx: GET RESPONSE, 6Cxx: repeat with
        Le=xx) so steps get the whole answer whatever the card's protocol."""
        data, sw1, sw2 = connection.transmit(list(apdu))
        answer = bytes(data)
        if sw1 == 0x6C:
            data, sw1, sw2 = connection.transmit([*apdu[:4], sw2])
            answer = bytes(data)
        rounds = 0
        while sw1 == 0x61 and rounds < MAX_RESPONSE_CHAIN:
            data, sw1, sw2 = connection.transmit([apdu[0] & 0x03, 0xC0, 0x00, 0x00, sw2])
            answer += bytes(data)
            rounds += 1
        return answer, _status(sw1, sw2)

    def _transmit_blocking(self, apdu: bytes) -> tuple[bytes, bytes]:
        with self._lock:
            connection = self._connection or self._connect()
            try:
                return self._exchange(connection, apdu)
            except PCSC_ERRORS as error:
                self._drop_connection()
                raise DriverError(f"card in {self._name} did not answer: {error}") from None

    def _read_blocking(self) -> CardRead:
        with self._lock:
            self._drop_connection()
            connection = self._connect()
            try:
                atr = bytes(connection.getATR())
                data, sw = self._exchange(connection, GET_UID)
                uid = data if sw == SW_OK else None
                if uid is None:
                    log.debug("%s: no UID from FF CA (SW %s)", self._name, sw.hex())
                responses: dict[str, bytes] = {}
                failures: dict[str, bytes] = {}
                for step in self._script:
                    data, sw = self._exchange(connection, step.apdu)
                    if sw == step.expect_sw:
                        responses[step.name] = data
                    else:
                        failures[step.name] = sw
            except PCSC_ERRORS as error:
                self._drop_connection()
                raise DriverError(f"card left {self._name} during the read: {error}") from None
            return CardRead(str(self._name), atr, uid, responses, failures)

    # --- asyncio side -----------------------------------------------------------------

    async def transmit(self, apdu: bytes) -> tuple[bytes, bytes]:
        """(data, SW) from the card now in the reader; DriverError when there is none."""
        if self._closed:
            raise DriverError("reader closed")
        return await self._call(self._transmit_blocking, apdu)

    async def watch(self) -> AsyncGenerator[CardRead, None]:
        """One CardRead per card insertion, UID and script done; ends after ``close``."""
        if self._closed:
            return
        reader = await self._call(self._find_reader)
        self._name = str(reader)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._queue = queue
        bridge = _Bridge(loop, queue.put_nowait)
        bridge.reader_name = self._name
        reader_monitor = _reader_monitor(self._poll)
        card_monitor = await self._call(_card_monitor)
        reader_monitor.addObserver(bridge)
        card_monitor.addObserver(bridge)
        present = False
        try:
            while not self._closed:
                try:
                    kind, name = await asyncio.wait_for(queue.get(), self._poll)
                except TimeoutError:
                    if not _card_monitor_alive():
                        raise DeviceUnavailable(
                            f"PC/SC service stopped while watching {self._name}"
                        ) from None
                    continue
                if kind == "inserted" and not present:
                    # addObserver replays the cards already present, which can race with
                    # the monitor thread reporting the same insertion: read once.
                    present = True
                    try:
                        yield await self._call(self._read_blocking)
                    except DeviceUnavailable:
                        raise
                    except DriverError as error:
                        log.warning("card read failed: %s", error)
                elif kind == "removed":
                    present = False
                    await self._call(self._forget_card)
                elif kind == "reader_removed":
                    raise DeviceUnavailable(f"reader {name} is gone (unplugged, or pcscd stopped)")
        finally:
            self._queue = None
            for monitor in (card_monitor, reader_monitor):
                with contextlib.suppress(Exception):  # joins its thread: off the loop
                    await self._call(monitor.deleteObserver, bridge)

    async def _call(self, call: Callable[..., T], *args: Any) -> T:
        return await _pcsc_call(self._answer_timeout, call, *args)

    def _forget_card(self) -> None:
        with self._lock:
            self._drop_connection()

    async def close(self) -> None:
        self._closed = True
        if self._queue is not None:
            self._queue.put_nowait(("closed", ""))
        try:
            await self._call(self._forget_card)
        except DeviceUnavailable as error:
            log.warning("closing %s: %s", self._name, error)
