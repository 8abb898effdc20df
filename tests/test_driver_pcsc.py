"""drivers.pcsc against a real PC/SC stack: pcscd, the vpcd reader, an emulated card."""

from __future__ import annotations

import asyncio
import logging
import signal
import statistics
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from drivers.errors import DeviceUnavailable, DriverError
from drivers.pcsc import ApduStep, CardRead, PcscReader, parse_script
from tests import pcsc_kit
from tests.pcsc_kit import (
    SLOT0,
    Pcscd,
    VirtualCard,
    card_present,
    reader_names,
    wait_until,
)

UID = "04A1B2C3D4E5F6"
AID = "A0000000031010"
CITIZEN_FILE = "张三|110101199003077777".encode()
# PC/SC part 3 ATR of an ISO 14443-4 card with historical bytes "CITIZEN1".
CITIZEN_ATR = bytes.fromhex("3B888001") + b"CITIZEN1" + bytes([0x7E])

SCRIPT = parse_script(
    f"""[
    {{name="select_app", apdu="00A4040C 07 {AID}"}},
    {{name="select_id", apdu="00A4020C 02 0101"}},
    {{name="read_id", apdu="00B00000 00"}},
]"""
)


@pytest.fixture
def make_card(pcscd: Pcscd, tmp_path: Path) -> Iterator[Callable[..., VirtualCard]]:
    cards: list[VirtualCard] = []

    def make(**options: object) -> VirtualCard:
        options.setdefault("files", {"0101": CITIZEN_FILE})
        options.setdefault("uid", UID)
        card = VirtualCard(tmp_path, aid=AID, **options)  # type: ignore[arg-type]
        cards.append(card)
        return card

    yield make
    for card in cards:
        card.remove(wait=False)
    wait_until(lambda: not card_present(SLOT0), 5, "the reader to be empty after the test")


@pytest.fixture
async def reader() -> AsyncIterator[PcscReader]:
    device = PcscReader("Virtual PCD 00 00", script=SCRIPT, poll=0.05)
    yield device
    await device.close()


async def next_read(reads: AsyncGenerator[CardRead, None], timeout: float = 5) -> CardRead:
    return await asyncio.wait_for(anext(reads), timeout)


def test_virtual_reader_is_listed(pcscd: Pcscd) -> None:
    assert SLOT0 in (reader_names() or [])


async def test_insertion_yields_the_card_uid_and_atr(
    reader: PcscReader, make_card: Callable[..., VirtualCard]
) -> None:
    reads = reader.watch()
    make_card().insert()
    read = await next_read(reads)
    await reads.aclose()
    assert (read.reader, read.uid, read.atr) == (SLOT0, bytes.fromhex(UID), CITIZEN_ATR)


async def test_script_responses_are_captured_without_status_words(
    reader: PcscReader, make_card: Callable[..., VirtualCard]
) -> None:
    make_card().insert()
    reads = reader.watch()
    read = await next_read(reads)
    await reads.aclose()
    assert read.responses == {"select_app": b"", "select_id": b"", "read_id": CITIZEN_FILE}
    assert read.failures == {}


async def test_unexpected_status_word_lands_in_failures(
    make_card: Callable[..., VirtualCard],
) -> None:
    script = [*SCRIPT[:1], ApduStep("select_missing", bytes.fromhex("00A4020C020202"))]
    device = PcscReader(SLOT0, script=script, poll=0.05)
    make_card().insert()
    reads = device.watch()
    read = await next_read(reads)
    await reads.aclose()
    await device.close()
    assert read.failures == {"select_missing": b"\x6a\x82"}
    assert "select_missing" not in read.responses


async def test_card_answering_get_uid_with_6a81_has_no_uid_and_still_runs_the_script(
    reader: PcscReader, make_card: Callable[..., VirtualCard]
) -> None:
    make_card(uid="").insert()
    reads = reader.watch()
    read = await next_read(reads)
    await reads.aclose()
    assert read.uid is None and read.responses["read_id"] == CITIZEN_FILE


async def test_removal_then_reinsertion_yields_again(
    reader: PcscReader, make_card: Callable[..., VirtualCard]
) -> None:
    card = make_card()
    reads = reader.watch()
    card.insert()
    first = await next_read(reads)
    card.remove()
    card.insert()
    second = await next_read(reads)
    await reads.aclose()
    assert first.uid == second.uid == bytes.fromhex(UID)
    assert second.responses["read_id"] == CITIZEN_FILE


async def test_card_pulled_mid_script_is_logged_and_watch_goes_on(
    reader: PcscReader,
    make_card: Callable[..., VirtualCard],
    caplog: pytest.LogCaptureFixture,
) -> None:
    reads = reader.watch()
    pulled = make_card(die_on="00B0")
    pulled.insert()
    pending = asyncio.ensure_future(next_read(reads))
    await asyncio.to_thread(
        wait_until, lambda: not pulled.inserted, 5, "the card to leave mid-script"
    )
    pulled.remove()
    with caplog.at_level(logging.WARNING, logger="drivers.pcsc"):
        make_card().insert()
        read = await pending
    await reads.aclose()
    assert "card left" in caplog.text and read.responses["read_id"] == CITIZEN_FILE


async def test_stock_vicc_dying_on_get_uid_is_logged_and_watch_goes_on(
    reader: PcscReader,
    make_card: Callable[..., VirtualCard],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Debian's vicc -t iso7816 reads CLA FF as proprietary secure messaging; its SM wrapper
    # then raises outside the handler and the process exits: the card is gone mid-read.
    stock = make_card(kind="iso7816")
    reads = reader.watch()
    pending = asyncio.ensure_future(next_read(reads))
    with caplog.at_level(logging.WARNING, logger="drivers.pcsc"):
        stock.insert()
        await asyncio.to_thread(wait_until, lambda: not stock.inserted, 5, "stock vicc to exit")
        stock.remove()
        make_card().insert()
        read = await pending
    await reads.aclose()
    assert "card left" in caplog.text and "SwError" in stock.log()
    assert read.uid == bytes.fromhex(UID)


async def test_transmit_without_card_raises_driver_error(pcscd: Pcscd) -> None:
    device = PcscReader(SLOT0)
    with pytest.raises(DriverError, match="no card"):
        await device.transmit(bytes.fromhex("FFCA000000"))
    await device.close()


async def test_transmit_round_trip_median(
    reader: PcscReader, make_card: Callable[..., VirtualCard]
) -> None:
    make_card().insert()
    times = []
    for _ in range(15):
        started = time.perf_counter()
        data, sw = await reader.transmit(bytes.fromhex("FFCA000000"))
        times.append(time.perf_counter() - started)
        assert (data, sw) == (bytes.fromhex(UID), b"\x90\x00")
    median_ms = statistics.median(times) * 1000
    print(f"\nPC/SC APDU round trip via pcscd+vpcd+vicc: median {median_ms:.1f} ms (n=15)")
    assert median_ms < 1000


async def test_transmit_after_card_removed_raises_driver_error(
    reader: PcscReader, make_card: Callable[..., VirtualCard]
) -> None:
    card = make_card()
    card.insert()
    await reader.transmit(bytes.fromhex("FFCA000000"))
    card.remove()
    with pytest.raises(DriverError):
        await reader.transmit(bytes.fromhex("FFCA000000"))


async def test_unknown_reader_makes_watch_raise_device_unavailable(pcscd: Pcscd) -> None:
    device = PcscReader("No Such Reader")
    with pytest.raises(DeviceUnavailable, match="No Such Reader"):
        await anext(device.watch())


async def test_close_ends_watch(reader: PcscReader) -> None:
    reads = reader.watch()
    pending = asyncio.ensure_future(anext(reads))
    await asyncio.sleep(0.2)
    await reader.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 2)


async def test_pcscd_stopping_makes_watch_raise_device_unavailable(pcscd: Pcscd) -> None:
    if not pcscd.owned:
        pytest.skip("pcscd was already running (not started by this test run): not stopping it")
    device = PcscReader(SLOT0, poll=0.05)
    reads = device.watch()
    pending = asyncio.ensure_future(anext(reads))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(pcscd.stop)
    try:
        with pytest.raises(DeviceUnavailable):
            await asyncio.wait_for(pending, 5)
    finally:
        await asyncio.to_thread(pcscd.start)
        await device.close()


async def test_a_pcscd_that_stops_answering_ends_the_watch_as_unavailable_not_in_a_hang(
    pcscd: Pcscd,
) -> None:
    assert pcscd.process is not None, "this test stops pcscd, so it must be the run's own"
    device = PcscReader(SLOT0, poll=0.05, answer_timeout=1)
    pcscd.process.send_signal(signal.SIGSTOP)  # alive, holding its socket, answering nothing
    try:
        started = time.monotonic()
        with pytest.raises(DeviceUnavailable, match="did not answer"):
            await asyncio.wait_for(anext(device.watch()), 5)
        await asyncio.wait_for(device.close(), 5)
        took = time.monotonic() - started
        stuck = [thread for thread in threading.enumerate() if thread.name.startswith("pcsc ")]
    finally:
        pcscd.process.send_signal(signal.SIGCONT)
    assert took < 3
    assert stuck and all(thread.daemon for thread in stuck)  # they never hold up the exit


def test_a_pcscd_stuck_in_one_test_is_started_afresh_for_the_next(
    pcscd: Pcscd, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pcscd.process is not None, "this test stops pcscd, so it must be the run's own"
    stuck = pcscd.process
    monkeypatch.setattr(pcsc_kit, "PCSCD_ANSWER_S", 1.0)
    stuck.send_signal(signal.SIGSTOP)
    with pytest.raises(AssertionError, match="pcscd did not answer"):
        reader_names()
    pcscd.revive_if_stuck()
    assert stuck.poll() is not None and pcscd.process is not stuck
    assert SLOT0 in (reader_names() or [])


async def test_watch_works_again_after_pcscd_restarts(
    pcscd: Pcscd, make_card: Callable[..., VirtualCard]
) -> None:
    if not pcscd.owned:
        pytest.skip("pcscd was already running (not started by this test run): not restarting it")
    first = PcscReader(SLOT0, poll=0.05)
    gone = asyncio.ensure_future(anext(first.watch()))
    await asyncio.sleep(0.3)
    await asyncio.to_thread(pcscd.stop)
    with pytest.raises(DeviceUnavailable):
        await asyncio.wait_for(gone, 5)
    await asyncio.to_thread(pcscd.start)
    again = PcscReader(SLOT0, script=SCRIPT, poll=0.05)
    reads = again.watch()
    make_card().insert()
    read = await next_read(reads)
    await reads.aclose()
    await again.close()
    assert read.responses["read_id"] == CITIZEN_FILE


def test_card_read_repr_masks_responses() -> None:
    read = CardRead(SLOT0, CITIZEN_ATR, b"\x04\x01", {"read_id": CITIZEN_FILE}, {})
    assert "110101" not in repr(read) and f"<{len(CITIZEN_FILE)} bytes>" in repr(read)


def test_script_accepts_a_list_of_tables_with_spaces_in_hex() -> None:
    steps = parse_script([{"name": "uid", "apdu": "FF CA 00 00 00", "expect_sw": "6A81"}])
    assert steps == [ApduStep("uid", bytes.fromhex("FFCA000000"), b"\x6a\x81")]


def test_script_accepts_a_toml_document_with_script_tables() -> None:
    steps = parse_script('[[script]]\nname = "a"\napdu = "00A4040C00"\n')
    assert steps == [ApduStep("a", bytes.fromhex("00A4040C00"))]


def test_invalid_hex_raises_value_error_naming_the_step() -> None:
    with pytest.raises(ValueError, match=r"'select_app'.*not valid hex"):
        parse_script('[{name="select_app", apdu="00A4040C0ZZ"}]')


def test_apdu_shorter_than_a_header_raises_value_error() -> None:
    with pytest.raises(ValueError, match="'short'"):
        parse_script([{"name": "short", "apdu": "00A4"}])


def test_step_without_name_raises_value_error_naming_its_position() -> None:
    with pytest.raises(ValueError, match="#2"):
        parse_script([{"name": "a", "apdu": "00A4040C00"}, {"apdu": "00B00000"}])


def test_duplicate_step_names_raise_value_error() -> None:
    with pytest.raises(ValueError, match="used twice"):
        parse_script([{"name": "a", "apdu": "00A4040C00"}, {"name": "a", "apdu": "00B00000"}])


def test_bad_expect_sw_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"'a'.*2 bytes"):
        parse_script([{"name": "a", "apdu": "00A4040C00", "expect_sw": "90"}])


def test_text_that_is_not_toml_raises_value_error() -> None:
    with pytest.raises(ValueError, match="TOML"):
        parse_script("[{name=")
