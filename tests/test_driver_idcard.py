"""The ID card reader driver against the simulated SAM, real bytes over a pty."""

from __future__ import annotations

import asyncio
import datetime
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.messages import CardRead, decode_request, encode
from drivers.errors import DeviceUnavailable, DriverError, ProtocolError
from drivers.idcard import (
    FIND,
    PREAMBLE,
    READ,
    SELECT,
    Frame,
    FrameParser,
    IdCard,
    IdCardReader,
    checksum,
    encode_frame,
    id_number_valid,
    parse_text_block,
)
from drivers.simulators.idcard import DEFAULT_PHOTO, IdCardSimulator, build_text_block
from tests.pty_kit import SerialLine, serial_line

FIND_FRAME = bytes.fromhex("AA AA AA 96 69 00 03 20 01 22")
SELECT_FRAME = bytes.fromhex("AA AA AA 96 69 00 03 20 02 21")
READ_FRAME = bytes.fromhex("AA AA AA 96 69 00 03 30 01 32")

WANG = dict(
    name="王小明",
    sex="1",
    nation="01",
    birth_date=datetime.date(1949, 12, 31),
    address="北京市东城区景山前街4号",
    id_number="11010519491231002X",
    authority="北京市公安局东城分局",
    valid_from=datetime.date(2015, 1, 1),
    valid_to=datetime.date(2035, 1, 1),
)
LI = dict(WANG, name="李芳", sex="2", id_number="440300199001011238",
          birth_date=datetime.date(1990, 1, 1), address="深圳市福田区福中三路1号")


def resident_block(**changes: object) -> bytes:
    return build_text_block("resident", **{**WANG, **changes})  # type: ignore[arg-type]


async def eventually(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[SerialLine]:
    line = serial_line(tmp_path)
    yield line
    line.unplug()


@pytest.fixture
async def sim(line: SerialLine) -> AsyncIterator[IdCardSimulator]:
    simulator = IdCardSimulator(line.fd)
    yield simulator
    simulator.detach()


@pytest.fixture
async def reader(line: SerialLine, sim: IdCardSimulator) -> AsyncIterator[IdCardReader]:
    reader = IdCardReader(line.path, timeout=0.5)
    await reader.open()
    yield reader
    await reader.close()


# ------------------------------------------------------------------- framing


@pytest.mark.parametrize(
    ("command", "expected"),
    [(FIND, FIND_FRAME), (SELECT, SELECT_FRAME), (READ, READ_FRAME)],
    ids=["find", "select", "read"],
)
def test_request_frames_are_the_ones_in_the_notes(command: bytes, expected: bytes) -> None:
    assert encode_frame(command) == expected


async def test_a_read_sends_exactly_find_select_read(
    reader: IdCardReader, sim: IdCardSimulator
) -> None:
    sim.place(resident_block())
    await reader.read_card()
    assert sim.requests == [FIND_FRAME, SELECT_FRAME, READ_FRAME]


def test_checksum_is_xor_of_len_through_data() -> None:
    assert checksum(bytes.fromhex("00 03 20 01")) == 0x22
    assert encode_frame(bytes.fromhex("00 00 80")) == bytes.fromhex("AAAAAA9669 0004 000080 84")


def test_frame_with_bad_checksum_is_skipped() -> None:
    parser = FrameParser()
    good = encode_frame(b"\x00\x00\x90")
    bad = good[:-1] + bytes([good[-1] ^ 0xFF])
    assert parser.feed(bad + good) == [Frame(b"\x00\x00\x90")]
    assert (parser.dropped, parser.bad_checksums) == (1, 1)


def test_preamble_with_impossible_length_is_skipped() -> None:
    parser = FrameParser()
    good = encode_frame(b"\x00\x00\x9f\x00\x00\x00\x00")
    assert parser.feed(PREAMBLE + b"\xff\xff" + good) == [Frame(good[7:-1])]
    assert parser.dropped == 1


def test_frame_fed_one_byte_at_a_time_is_reassembled() -> None:
    parser = FrameParser()
    frame = encode_frame(b"\x00\x00\x90" + bytes(range(200)))
    found = [f for byte in frame for f in parser.feed(bytes([byte]))]
    assert found == [Frame(frame[7:-1])]


def test_preambles_inside_a_photo_do_not_split_the_frame() -> None:
    photo = (
        b"\x11" * 100 + PREAMBLE + b"\x00\x40" + b"\x22" * 200 + PREAMBLE + b"\x09\x00"
    ).ljust(1024, b"\x33")
    payload = b"\x00\x00\x90\x01\x00\x04\x00" + resident_block() + photo
    parser = FrameParser()
    found = [f for byte in encode_frame(payload) for f in parser.feed(bytes([byte]))]
    assert found == [Frame(payload)]


def test_frame_cut_short_does_not_swallow_the_next_one() -> None:
    parser = FrameParser()
    cut = encode_frame(b"\x00\x00\x90" + bytes(1284))[:40]
    answer = encode_frame(b"\x00\x00\x80")
    assert parser.feed(cut + answer) == [Frame(b"\x00\x00\x80")]
    assert parser.dropped == 1


# ------------------------------------------------------------- GB 11643


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002X",
        "440300199001011238",
        "310115196709183562",
        "810000198506060017",  # Hong Kong resident permit
        "830000200002290023",  # Taiwan, born on a leap day
        "911840198007150017",  # 2023 foreign permanent-resident card
        "11010519491231002x",
    ],
)
def test_valid_id_numbers_pass(number: str) -> None:
    assert id_number_valid(number)


@pytest.mark.parametrize(
    "number",
    [
        "110105194912310021",  # wrong check character
        "440300199001011239",
        "11010519491231002",  # 17 characters
        "11010519491231002X0",
        "110105194902300026",  # 30 February (check character right for the digits)
        "830000190002290029",  # 1900 was no leap year
        "11010519491231OO2X",  # letters where digits go
        "110105299912310028",  # born in the future
        "".join(chr(0xFF10 + int(c)) for c in "11010519491231002") + "X",  # full-width digits
        "",
    ],
)
def test_invalid_id_numbers_fail(number: str) -> None:
    assert not id_number_valid(number)


# ------------------------------------------------------------------ text blocks


def test_resident_block_parses_field_by_field() -> None:
    card = parse_text_block(resident_block(), DEFAULT_PHOTO)
    assert card == IdCard(card_type="resident", photo_wlt=DEFAULT_PHOTO, **WANG)  # type: ignore[arg-type]


def test_long_term_validity_reads_as_none() -> None:
    card = parse_text_block(resident_block(valid_to="长期"), DEFAULT_PHOTO)
    assert card.valid_to is None


def test_foreign_2017_card_parses() -> None:
    block = build_text_block(
        "foreign_permanent",
        english_name="SMITH, JOHN MICHAEL",
        name="史密斯",
        sex="1",
        id_number="USA110080122501",
        nation="USA",
        valid_from=datetime.date(2018, 3, 1),
        valid_to=datetime.date(2028, 3, 1),
        birth_date=datetime.date(1980, 12, 25),
        card_version="01",
        authority="1100",
    )
    card = parse_text_block(block, DEFAULT_PHOTO)
    assert (card.card_type, card.type_flag, card.name, card.english_name) == (
        "foreign_permanent", "I", "史密斯", "SMITH, JOHN MICHAEL",
    )
    assert (card.id_number, card.nation, card.sex, card.birth_date) == (
        "USA110080122501", "USA", "1", datetime.date(1980, 12, 25),
    )
    assert (card.card_version, card.authority, card.address) == ("01", "1100", "")


def test_foreign_2023_card_joins_its_english_name() -> None:
    english = "VAN DER BERG-OLDENBURG, ALEXANDRA CATHARINA M"
    block = build_text_block(
        "foreign_permanent",
        layout="2023",
        name="",
        english_name=english,
        sex="2",
        renewal_count="01",
        birth_date=datetime.date(1980, 7, 15),
        id_number="911840198007150017",
        valid_from=datetime.date(2024, 1, 2),
        valid_to=datetime.date(2034, 1, 2),
        nation="NLD",
        previous_number="528",
    )
    card = parse_text_block(block, DEFAULT_PHOTO)
    assert len(english) > 35
    assert (card.type_flag, card.name, card.english_name) == ("Y", english, english)
    assert (card.id_number, card.nation, card.renewal_count, card.previous_number) == (
        "911840198007150017", "NLD", "01", "528",
    )


def test_hk_macau_taiwan_permit_parses() -> None:
    block = build_text_block(
        "hk_macau_taiwan",
        name="陈大文",
        sex="1",
        birth_date=datetime.date(1985, 6, 6),
        address="广东省深圳市南山区科技园",
        id_number="810000198506060017",
        authority="深圳市公安局",
        valid_from=datetime.date(2019, 1, 1),
        valid_to=datetime.date(2024, 1, 1),
        pass_number="H12345678",
        issue_count="01",
    )
    card = parse_text_block(block, DEFAULT_PHOTO)
    assert (card.card_type, card.type_flag, card.pass_number, card.issue_count) == (
        "hk_macau_taiwan", "J", "H12345678", "01",
    )
    assert (card.name, card.id_number, card.nation) == ("陈大文", "810000198506060017", "")


def test_card_with_impossible_birth_date_is_refused() -> None:
    with pytest.raises(DriverError, match="birth date"):
        parse_text_block(resident_block(birth_date="19491331"), DEFAULT_PHOTO)


def test_card_whose_number_fails_the_checksum_is_refused() -> None:
    with pytest.raises(DriverError, match="GB 11643"):
        parse_text_block(resident_block(id_number="110105194912310021"), DEFAULT_PHOTO)


def test_repr_masks_personal_data() -> None:
    card = parse_text_block(resident_block(), DEFAULT_PHOTO)
    shown = repr(card) + str(card) + f"{card}"
    for secret in ("王小明", "11010519491231002X", "景山", "1949"):
        assert secret not in shown
    assert "resident" in shown


def test_identity_is_a_valid_card_read() -> None:
    card = parse_text_block(resident_block(), DEFAULT_PHOTO)
    message = CardRead(id="r02-71e0b4c9", identity=card.identity())
    decoded = decode_request(encode(message))
    assert isinstance(decoded, CardRead)
    assert decoded.identity.id_number == "11010519491231002X"
    assert decoded.identity.name == "王小明"


def test_identity_cuts_a_long_english_name_to_the_bus_limit() -> None:
    card = parse_text_block(resident_block(), DEFAULT_PHOTO)
    foreign = IdCard(**{**card.__dict__, "name": "X" * 60 + " " + "Y" * 59})
    message = CardRead(id="r02-71e0b4c9", identity=foreign.identity())
    assert msgspec.json.decode(encode(message))["identity"]["name"] == ("X" * 60 + " " + "Y" * 39)
    assert isinstance(decode_request(encode(message)), CardRead)


# ------------------------------------------------------------- over the line


async def test_reads_a_resident_card(reader: IdCardReader, sim: IdCardSimulator) -> None:
    sim.place(resident_block(), photo=DEFAULT_PHOTO)
    card = await reader.read_card()
    assert card == IdCard(card_type="resident", photo_wlt=DEFAULT_PHOTO, **WANG)  # type: ignore[arg-type]


async def test_reads_back_a_placed_idcard(reader: IdCardReader, sim: IdCardSimulator) -> None:
    original = IdCard(card_type="resident", photo_wlt=b"\x01" * 1024, **{**WANG, "valid_to": None})  # type: ignore[arg-type]
    sim.place(original)
    assert await reader.read_card() == original


async def test_no_card_reads_as_none(reader: IdCardReader, sim: IdCardSimulator) -> None:
    assert await reader.read_card() is None
    assert sim.requests == [FIND_FRAME]


async def test_read_failure_raises_driver_error(
    reader: IdCardReader, sim: IdCardSimulator
) -> None:
    sim.place(resident_block())
    sim.read_fails = True
    with pytest.raises(DriverError, match="0x41") as raised:
        await reader.read_card()
    assert not isinstance(raised.value, DeviceUnavailable)


async def test_select_failure_raises_driver_error(
    reader: IdCardReader, sim: IdCardSimulator
) -> None:
    sim.place(resident_block())
    sim.select_fails = True
    with pytest.raises(DriverError, match="select"):
        await reader.read_card()


async def test_silent_reader_is_unavailable_within_the_timeout(
    line: SerialLine, sim: IdCardSimulator
) -> None:
    sim.silent = True
    reader = IdCardReader(line.path, timeout=0.2)
    await reader.open()
    started = time.monotonic()
    with pytest.raises(DeviceUnavailable, match="did not answer"):
        await reader.read_card()
    assert 0.2 <= time.monotonic() - started < 1.0
    assert not reader.is_open


async def test_noise_before_each_answer_is_skipped(
    reader: IdCardReader, sim: IdCardSimulator
) -> None:
    sim.place(resident_block())
    sim.noise = b"\x00\xff\xaa\xaa\x96" + PREAMBLE + b"\xff\xff" + b"\xaa\xaa"
    card = await reader.read_card()
    assert card is not None and card.id_number == WANG["id_number"]


async def test_answers_in_single_bytes_are_reassembled(
    reader: IdCardReader, sim: IdCardSimulator
) -> None:
    sim.place(resident_block())
    sim.chunk_size = 1
    card = await reader.read_card()
    assert card is not None and card.name == "王小明"


async def test_answers_in_slow_chunks_are_reassembled(
    reader: IdCardReader, sim: IdCardSimulator
) -> None:
    sim.place(resident_block())
    sim.chunk_size, sim.chunk_delay = 64, 0.002
    card = await reader.read_card()
    assert card is not None and card.name == "王小明"


async def test_one_garbled_answer_is_asked_for_again(
    reader: IdCardReader, sim: IdCardSimulator
) -> None:
    sim.place(resident_block())
    sim.corrupt_next = 1
    card = await reader.read_card()
    assert card is not None
    assert sim.requests == [FIND_FRAME, FIND_FRAME, SELECT_FRAME, READ_FRAME]


async def test_answers_that_stay_garbled_raise_protocol_error(
    line: SerialLine, sim: IdCardSimulator
) -> None:
    sim.place(resident_block())
    sim.bad_checksum = True
    reader = IdCardReader(line.path, timeout=3.0)
    await reader.open()
    started = time.monotonic()
    with pytest.raises(ProtocolError):
        await reader.read_card()
    assert time.monotonic() - started < 1.5, "garbled answers must not wait for the timeout"
    assert reader.is_open
    assert sim.requests == [FIND_FRAME, FIND_FRAME]
    await reader.close()


async def test_simulator_refuses_a_request_with_a_bad_checksum(
    line: SerialLine, sim: IdCardSimulator
) -> None:
    """The simulator checks framing on its own, so a driver that framed wrong would fail."""
    sim.place(resident_block())
    parser = FrameParser()
    answers: list[Frame] = []
    fd = os.open(line.path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        os.write(fd, FIND_FRAME[:-1] + b"\x00")
        deadline = time.monotonic() + 2
        while not answers and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            try:
                answers += parser.feed(os.read(fd, 4096))
            except BlockingIOError:
                continue
    finally:
        os.close(fd)
    assert [answer.sw3 for answer in answers] == [0x10]


async def test_garbled_card_text_raises_driver_error(
    reader: IdCardReader, sim: IdCardSimulator
) -> None:
    sim.place(resident_block(valid_from="2015XX01"))
    with pytest.raises(DriverError, match="validity"):
        await reader.read_card()


# ------------------------------------------------------------------- watching


async def test_watch_yields_one_card_per_placement(
    reader: IdCardReader, sim: IdCardSimulator
) -> None:
    seen: list[IdCard] = []

    async def collect() -> None:
        async for card in reader.watch(interval=0.01):
            seen.append(card)

    task = asyncio.create_task(collect())
    try:
        sim.place(resident_block())
        await eventually(lambda: len(seen) == 1)
        polls = len(sim.requests)
        await eventually(lambda: len(sim.requests) >= polls + 15)
        assert len(seen) == 1
        sim.remove()
        finds = sim.requests.count(FIND_FRAME)
        await eventually(lambda: sim.requests.count(FIND_FRAME) >= finds + 2)
        sim.place(resident_block())
        await eventually(lambda: len(seen) == 2)
    finally:
        task.cancel()
    assert [card.id_number for card in seen] == [WANG["id_number"]] * 2


async def test_watch_yields_a_different_card_put_in_place_of_the_first(
    reader: IdCardReader, sim: IdCardSimulator
) -> None:
    seen: list[IdCard] = []

    async def collect() -> None:
        async for card in reader.watch(interval=0.01):
            seen.append(card)

    task = asyncio.create_task(collect())
    try:
        sim.place(resident_block())
        await eventually(lambda: len(seen) == 1)
        sim.place(build_text_block("resident", **LI))  # type: ignore[arg-type]
        await eventually(lambda: len(seen) == 2)
    finally:
        task.cancel()
    assert [card.name for card in seen] == ["王小明", "李芳"]


async def test_watch_carries_on_after_an_unreadable_card(
    reader: IdCardReader, sim: IdCardSimulator
) -> None:
    seen: list[IdCard] = []

    async def collect() -> None:
        async for card in reader.watch(interval=0.01):
            seen.append(card)

    task = asyncio.create_task(collect())
    try:
        sim.place(resident_block())
        sim.read_fails = True
        await eventually(lambda: sim.requests.count(READ_FRAME) >= 2)
        assert seen == []
        sim.read_fails = False
        await eventually(lambda: len(seen) == 1)
    finally:
        task.cancel()
    assert seen[0].name == "王小明"


async def test_unplug_during_watch_raises_device_unavailable(
    line: SerialLine, sim: IdCardSimulator, reader: IdCardReader
) -> None:
    async def watch() -> list[IdCard]:
        return [card async for card in reader.watch(interval=0.01)]

    task = asyncio.create_task(watch())
    await eventually(lambda: len(sim.requests) >= 3)
    sim.detach()
    line.unplug()
    started = time.monotonic()
    with pytest.raises(DeviceUnavailable):
        await asyncio.wait_for(task, 2)
    assert time.monotonic() - started < 1.0
    assert not reader.is_open


async def test_replug_and_reopen_reads_again(
    line: SerialLine, sim: IdCardSimulator, reader: IdCardReader
) -> None:
    sim.place(resident_block())
    assert await reader.read_card() is not None
    sim.detach()
    line.unplug()
    with pytest.raises(DeviceUnavailable):
        await reader.read_card()
    with pytest.raises(DeviceUnavailable):
        await reader.open()
    line.replug()
    sim.attach(line.fd)
    await reader.open()
    card = await reader.read_card()
    assert card is not None and card.id_number == WANG["id_number"]


async def test_opening_a_missing_port_raises_device_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable):
        await IdCardReader(str(tmp_path / "ttyNONE")).open()


async def test_reading_a_closed_reader_raises_device_unavailable(line: SerialLine) -> None:
    with pytest.raises(DeviceUnavailable, match="not open"):
        await IdCardReader(line.path).read_card()


# ------------------------------------------------------------------ fuzzing

payloads = st.binary(min_size=2, max_size=300)
noise = st.binary(max_size=200).filter(lambda data: PREAMBLE not in data)


def _mutate(frame: bytes, data: st.DataObject) -> bytes:
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete", "length"]))
    position = data.draw(st.integers(0, len(frame) - 1))
    if kind == "flip":
        flipped = frame[position] ^ data.draw(st.integers(1, 255))
        return frame[:position] + bytes([flipped]) + frame[position + 1 :]
    if kind == "truncate":
        return frame[:position]
    if kind == "insert":
        return frame[:position] + data.draw(st.binary(min_size=1, max_size=8)) + frame[position:]
    if kind == "delete":
        return frame[:position] + frame[position + 1 :]
    return frame[:5] + data.draw(st.binary(min_size=2, max_size=2)) + frame[7:]


pieces = st.one_of(
    st.binary(max_size=50),
    payloads.map(encode_frame),
    st.binary(max_size=40).map(lambda tail: PREAMBLE + tail),
    st.binary(max_size=2).map(lambda tail: PREAMBLE[: len(tail) + 2] + tail),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(pieces, max_size=12).map(b"".join), st.integers(1, 64))
def test_parser_never_raises_and_never_invents_frames(stream: bytes, chunk: int) -> None:
    parser = FrameParser()
    frames = [f for i in range(0, len(stream), chunk) for f in parser.feed(stream[i : i + chunk])]
    for frame in frames:
        assert encode_frame(frame.payload) in stream


@settings(max_examples=300, deadline=None)
@given(noise, st.lists(payloads, min_size=1, max_size=4), st.integers(1, 64))
def test_frames_after_noise_are_all_found(
    garbage: bytes, bodies: list[bytes], chunk: int
) -> None:
    stream = garbage + b"".join(encode_frame(body) for body in bodies)
    parser = FrameParser()
    frames = [f for i in range(0, len(stream), chunk) for f in parser.feed(stream[i : i + chunk])]
    assert [frame.payload for frame in frames] == bodies


def _feed_bytewise(stream: bytes) -> list[tuple[int, Frame]]:
    """Frames with where they start: fed one byte at a time, a frame comes out on the
    feed of its last byte."""
    parser = FrameParser()
    located = []
    for end in range(1, len(stream) + 1):
        for frame in parser.feed(stream[end - 1 : end]):
            located.append((end - len(encode_frame(frame.payload)), frame))
    return located


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), payloads, st.lists(payloads, min_size=1, max_size=3))
def test_frames_after_a_mutated_frame_are_found(
    data: st.DataObject, first: bytes, bodies: list[bytes]
) -> None:
    mutated = _mutate(encode_frame(first), data)
    starts, offset = [], len(mutated)
    for body in bodies:
        starts.append(offset)
        offset += len(encode_frame(body))
    stream = mutated + b"".join(encode_frame(body) for body in bodies)
    located = _feed_bytewise(stream)
    for start, frame in located:
        assert stream[start:].startswith(encode_frame(frame.payload))
    # A damaged frame whose checksum still happens to match (1 in 256) comes out as a
    # frame and hides what it overlaps; every frame beyond it is still found.
    barrier = max([len(mutated)] + [start + len(encode_frame(f.payload))
                                    for start, f in located if start < len(mutated)])
    expected = [body for body, start in zip(bodies, starts, strict=True) if start >= barrier]
    assert [frame.payload for start, frame in located if start >= barrier] == expected
    assert expected == bodies or barrier > len(mutated)
