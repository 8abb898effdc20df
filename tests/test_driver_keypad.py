"""Wireless keypads: receiver frames byte for byte, presses over a pty (debounce,
noise, unplugging), and the keymaps that turn keys into the hall's requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import messages
from drivers.errors import DeviceUnavailable, DriverError
from drivers.keypad import (
    ACK,
    RF_IN,
    Action,
    CallKeymap,
    EvaluationKeymap,
    KeypadReceiver,
    KeyPress,
    RfBridgeParser,
    RfFrame,
    to_request,
)
from drivers.simulators.keypad import KeypadSimulator, rf_frame
from tests.pty_kit import SerialLine, serial_line

FUZZ = settings(max_examples=250, deadline=None)

# Portisch/RF-Bridge-EFM8BB1 README: Tsyn 0x24E0, Tlow 0x0140, Thigh 0x0384, data 0xD00358
# (its example is the transmit command A5; a received code is the same layout under A4).
EXAMPLE = bytes.fromhex("AA A4 24 E0 01 40 03 84 D0 03 58 55")
PAUSE_REASONS = ("break", "meal", "meeting")
REQUEST_ID = "t04-0123abcd"


@pytest.fixture
def line(tmp_path: Path) -> Iterator[SerialLine]:
    serial = serial_line(tmp_path)
    yield serial
    serial.close()


@pytest.fixture
async def rig(line: SerialLine) -> AsyncIterator[tuple[KeypadReceiver, KeypadSimulator]]:
    sim = KeypadSimulator(line.fd)
    sim.start()
    receiver = KeypadReceiver(line.path, debounce=0.15)
    await receiver.open()
    yield receiver, sim
    await receiver.close()
    sim.stop()


class Presses:
    """Collects what ``presses()`` yields, in a task of its own."""

    def __init__(self, receiver: KeypadReceiver) -> None:
        self.seen: list[KeyPress] = []
        self.task = asyncio.create_task(self._run(receiver))

    async def _run(self, receiver: KeypadReceiver) -> None:
        async for press in receiver.presses():
            self.seen.append(press)

    async def settled(self, sim: KeypadSimulator, frames: int) -> list[KeyPress]:
        """What was yielded once the receiver acknowledged ``frames`` frames."""
        await sim.wait_for_acks(frames)
        await asyncio.sleep(0.03)
        return self.seen

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def decoded(request: messages.Request) -> messages.Request:
    return messages.decode_request(messages.encode(request))


# --------------------------------------------------------------------- frames


def test_example_frame_decodes_to_its_times_and_code() -> None:
    assert RfBridgeParser().feed(EXAMPLE) == [RfFrame(RF_IN, 0x24E0, 0x0140, 0x0384, 0xD00358)]


def test_code_splits_into_ev1527_address_and_key() -> None:
    frame = RfFrame(RF_IN, 0x24E0, 0x0140, 0x0384, 0xD00358)
    assert (frame.address, frame.key) == (0xD0035, 8)


def test_simulator_frame_is_the_example_byte_for_byte() -> None:
    assert rf_frame(0xD0035, 8) == EXAMPLE


def test_end_byte_inside_the_code_does_not_cut_the_frame() -> None:
    frames = RfBridgeParser().feed(rf_frame(0x55555, 5))
    assert [(f.address, f.key) for f in frames] == [(0x55555, 5)]


def test_frame_split_across_reads_is_found() -> None:
    parser = RfBridgeParser()
    assert parser.feed(EXAMPLE[:5]) == []
    assert [f.code for f in parser.feed(EXAMPLE[5:])] == [0xD00358]


def test_acknowledgement_frame_is_recognised() -> None:
    assert RfBridgeParser().feed(bytes.fromhex("AA A0 55")) == [RfFrame(ACK)]


def test_frame_with_impossible_pulse_times_is_skipped() -> None:
    bad = rf_frame(0xD0035, 8, sync=0x0100, low=0x0140, high=0x0384)
    parser = RfBridgeParser()
    assert parser.feed(bad) == []
    assert parser.skipped > 0


def test_noise_before_a_frame_is_skipped() -> None:
    parser = RfBridgeParser()
    frames = parser.feed(b"\x00\x13\xa4\x55\xff" + EXAMPLE)
    assert ([f.code for f in frames], parser.skipped) == ([0xD00358], 5)


def test_simulator_refuses_an_address_over_20_bits() -> None:
    with pytest.raises(ValueError, match="20 bits"):
        rf_frame(1 << 20, 1)


# ------------------------------------------------------------------ receiver


async def test_held_key_is_one_press(rig: tuple[KeypadReceiver, KeypadSimulator]) -> None:
    receiver, sim = rig
    presses = Presses(receiver)
    try:
        await sim.press("D0035", 8, repeats=3)
        seen = await presses.settled(sim, 3)
        assert [(p.keypad, p.key) for p in seen] == [("D0035", 8)]
    finally:
        await presses.stop()


async def test_two_keys_are_two_presses(rig: tuple[KeypadReceiver, KeypadSimulator]) -> None:
    receiver, sim = rig
    presses = Presses(receiver)
    try:
        await sim.press(0x1A2B3, 1, repeats=2)
        await sim.press(0x1A2B3, 2, repeats=2)
        seen = await presses.settled(sim, 4)
        assert [(p.keypad, p.key) for p in seen] == [("1A2B3", 1), ("1A2B3", 2)]
    finally:
        await presses.stop()


async def test_same_key_pressed_again_after_debounce_counts_twice(
    rig: tuple[KeypadReceiver, KeypadSimulator],
) -> None:
    receiver, sim = rig
    presses = Presses(receiver)
    try:
        await sim.press(0x00042, 3, repeats=2)
        await sim.wait_for_acks(2)
        await asyncio.sleep(receiver.debounce + 0.1)
        await sim.press(0x00042, 3, repeats=2)
        seen = await presses.settled(sim, 4)
        assert [(p.keypad, p.key) for p in seen] == [("00042", 3), ("00042", 3)]
        assert seen[1].at - seen[0].at > receiver.debounce
    finally:
        await presses.stop()


async def test_same_key_on_two_keypads_is_two_presses(
    rig: tuple[KeypadReceiver, KeypadSimulator],
) -> None:
    receiver, sim = rig
    presses = Presses(receiver)
    try:
        await sim.press(0x00001, 1, repeats=1)
        await sim.press(0x00002, 1, repeats=1)
        seen = await presses.settled(sim, 2)
        assert [p.keypad for p in seen] == ["00001", "00002"]
    finally:
        await presses.stop()


async def test_noise_between_frames_is_skipped(
    rig: tuple[KeypadReceiver, KeypadSimulator],
) -> None:
    receiver, sim = rig
    presses = Presses(receiver)
    try:
        await sim.press(0x0BEEF, 1, repeats=1)
        sim.noise(40)
        await sim.press(0x0BEEF, 2, repeats=1)
        seen = await presses.settled(sim, 2)
        assert [p.key for p in seen] == [1, 2]
        assert receiver.skipped >= 40
    finally:
        await presses.stop()


async def test_partial_frame_is_dropped_after_silence(
    rig: tuple[KeypadReceiver, KeypadSimulator],
) -> None:
    receiver, sim = rig
    presses = Presses(receiver)
    try:
        sim.write(EXAMPLE[:6])
        await asyncio.sleep(0.12)
        await sim.press(0x0CAFE, 4, repeats=1)
        seen = await presses.settled(sim, 1)
        assert [(p.keypad, p.key) for p in seen] == [("0CAFE", 4)]
    finally:
        await presses.stop()


async def test_every_code_frame_is_acknowledged(
    rig: tuple[KeypadReceiver, KeypadSimulator],
) -> None:
    receiver, sim = rig
    presses = Presses(receiver)
    try:
        await sim.press(0x12345, 6, repeats=4)
        await sim.wait_for_acks(4)
        assert sim.acks == 4
    finally:
        await presses.stop()


async def test_unplugged_receiver_raises_device_unavailable(line: SerialLine) -> None:
    receiver = KeypadReceiver(line.path)
    await receiver.open()
    presses = Presses(receiver)
    await asyncio.sleep(0.02)
    line.unplug()
    with pytest.raises(DeviceUnavailable):
        await asyncio.wait_for(presses.task, 2.0)


async def test_receiver_works_again_after_replug(line: SerialLine) -> None:
    receiver = KeypadReceiver(line.path)
    await receiver.open()
    first = Presses(receiver)
    await asyncio.sleep(0.02)
    line.unplug()
    with pytest.raises(DeviceUnavailable):
        await asyncio.wait_for(first.task, 2.0)
    line.replug()
    sim = KeypadSimulator(line.fd)
    sim.start()
    await receiver.open()
    second = Presses(receiver)
    try:
        await sim.press(0xD0035, 8, repeats=1)
        assert [p.key for p in await second.settled(sim, 1)] == [8]
    finally:
        await second.stop()
        await receiver.close()
        sim.stop()


async def test_presses_before_open_raise_device_unavailable() -> None:
    receiver = KeypadReceiver("/dev/null-keypad")
    with pytest.raises(DeviceUnavailable):
        await anext(receiver.presses())


async def test_opening_a_missing_receiver_raises_device_unavailable(tmp_path: Path) -> None:
    with pytest.raises(DeviceUnavailable):
        await KeypadReceiver(str(tmp_path / "ttyNONE")).open()


# -------------------------------------------------------------------- keymaps


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        (1, messages.CallNext),
        (2, messages.Recall),
        (3, messages.Skip),
        (4, messages.StartService),
        (5, messages.FinishService),
        (7, messages.Resume),
        (8, messages.AskEvaluation),
    ],
)
def test_default_keys_make_their_wire_requests(
    key: int, kind: Callable[..., messages.Request]
) -> None:
    action = CallKeymap(PAUSE_REASONS).press(key)
    assert action is not None
    request = to_request(action, request_id=REQUEST_ID)
    assert decoded(request) == kind(id=REQUEST_ID)


def test_pause_takes_the_first_configured_reason() -> None:
    action = CallKeymap(PAUSE_REASONS).press(6)
    assert action is not None
    assert decoded(to_request(action, request_id=REQUEST_ID)) == messages.Pause(
        id=REQUEST_ID, reason="break"
    )


def digit_keymap() -> CallKeymap:
    return CallKeymap(
        PAUSE_REASONS,
        keys={10: "login", 11: "transfer", 12: "pause", 13: "call_next"},
        digits={code: code for code in range(10)},
    )


def test_digits_before_pause_pick_the_nth_reason() -> None:
    keymap = digit_keymap()
    assert keymap.press(3) is None
    assert keymap.press(12) == Action("pause", reason="meeting")


def test_pause_reason_number_out_of_range_does_nothing() -> None:
    keymap = digit_keymap()
    keymap.press(9)
    assert keymap.press(12) is None


def test_digits_before_login_are_the_staff_id() -> None:
    keymap = digit_keymap()
    for key in (1, 0, 2, 4):
        keymap.press(key)
    action = keymap.press(10)
    assert action is not None
    assert decoded(to_request(action, request_id=REQUEST_ID)) == messages.Login(
        id=REQUEST_ID, staff_id="1024"
    )


def test_digits_before_transfer_name_the_window() -> None:
    keymap = digit_keymap()
    keymap.press(4)
    action = keymap.press(11)
    assert action is not None
    assert decoded(to_request(action, request_id=REQUEST_ID)) == messages.Transfer(
        id=REQUEST_ID, window="w04"
    )


def test_transfer_without_digits_does_nothing() -> None:
    assert digit_keymap().press(11) is None


def test_a_function_key_clears_the_digits() -> None:
    keymap = digit_keymap()
    keymap.press(5)
    keymap.press(13)
    assert (keymap.typed, keymap.press(10)) == ("", None)


def test_logout_key_logs_out() -> None:
    action = CallKeymap(PAUSE_REASONS, keys={9: "logout"}).press(9)
    assert action is not None
    assert decoded(to_request(action, request_id=REQUEST_ID)) == messages.Logout(id=REQUEST_ID)


def test_a_key_without_action_does_nothing() -> None:
    assert CallKeymap(PAUSE_REASONS).press(15) is None


def test_keymap_needs_pause_reasons() -> None:
    with pytest.raises(ValueError, match="pause reasons"):
        CallKeymap(())


def test_keymap_refuses_an_unknown_action() -> None:
    with pytest.raises(ValueError, match="unknown keypad actions"):
        CallKeymap(PAUSE_REASONS, keys={1: "explode"})  # type: ignore[dict-item]


def test_request_the_hall_would_refuse_raises_driver_error() -> None:
    with pytest.raises(DriverError, match="refused"):
        to_request(Action("call_next"), request_id="short")


def test_evaluation_key_rates_the_ticket() -> None:
    rate = EvaluationKeymap().to_rate(1, ticket_id="20260316-A013", request_id="e04-3f81c6a5")
    assert rate is not None
    assert decoded(rate) == messages.Rate(id="e04-3f81c6a5", ticket_id="20260316-A013", rating=5)


def test_evaluation_key_without_rating_rates_nothing() -> None:
    assert EvaluationKeymap().to_rate(9, ticket_id="20260316-A013", request_id=REQUEST_ID) is None


def test_evaluation_keymap_refuses_a_rating_out_of_range() -> None:
    with pytest.raises(ValueError, match="1 to 5"):
        EvaluationKeymap({1: 6})


# ----------------------------------------------------------------------- fuzz

addresses = st.integers(0, (1 << 20) - 1)
keys = st.integers(0, 15)


def without_sync_byte(address: int, key: int) -> bool:
    return 0xAA not in (address << 4 | key).to_bytes(3, "big")


@FUZZ
@given(st.binary(max_size=600))
def test_parser_survives_any_bytes(data: bytes) -> None:
    frames = RfBridgeParser().feed(data)
    assert all(0 <= frame.code < 1 << 24 for frame in frames)


@FUZZ
@given(st.binary(max_size=200).filter(lambda b: 0xAA not in b), addresses, keys)
def test_frame_after_garbage_is_found(garbage: bytes, address: int, key: int) -> None:
    frames = RfBridgeParser().feed(garbage + rf_frame(address, key))
    assert [(f.address, f.key) for f in frames] == [(address, key)]


@FUZZ
@given(st.lists(st.tuples(addresses, keys), max_size=6), st.data())
def test_frames_are_found_however_the_reads_split_them(
    codes: list[tuple[int, int]], data: st.DataObject
) -> None:
    stream = b"".join(rf_frame(address, key) for address, key in codes)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = RfBridgeParser()
    frames: list[RfFrame] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        frames += parser.feed(stream[start:end])
    assert [(f.address, f.key) for f in frames] == codes


@FUZZ
@given(
    st.tuples(addresses, keys).filter(lambda c: without_sync_byte(*c)),
    st.tuples(addresses, keys),
    st.data(),
)
def test_damaged_frame_never_hides_the_next_one(
    damaged: tuple[int, int], following: tuple[int, int], data: st.DataObject
) -> None:
    frame = bytearray(rf_frame(*damaged))
    for _ in range(data.draw(st.integers(1, 3))):
        frame[data.draw(st.integers(1, len(frame) - 1))] = data.draw(
            st.integers(0, 255).filter(lambda b: b != 0xAA)
        )
    frames = RfBridgeParser().feed(bytes(frame) + rf_frame(*following))
    assert [(f.address, f.key) for f in frames][-1] == following
