"""LED strips: Alpha packets and text lines byte for byte, the screens the hall's views
become, and a strip on a pty as the edge agent drives it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.messages import BoardDisplay, CallView, PositionView, WaitingView, WindowDisplay
from drivers.errors import DeviceUnavailable
from drivers.led import (
    BOTTOM_LINE,
    HOLD,
    IDLE_BOARD,
    MIDDLE_LINE,
    TOP_LINE,
    LedStrip,
    alpha_checksum,
    board_lines,
    encode_alpha,
    encode_text,
    seven_e1,
    to_ascii,
    window_lines,
)
from drivers.simulators.led import AlphaDecoder, LedSimulator, TextLineDecoder, write_text_lines
from tests.pty_kit import SerialLine, serial_line

FUZZ = settings(max_examples=250, deadline=None)

# The wake-up, header and Write TEXT command of the QBASIC example on
# wls.wwco.com/ledsigns/alpha/protocol.html:
# CHR$(1)+"Z00"+CHR$(2)+"AA"+CHR$(27)+" b"+"Message"+CHR$(4).
PUBLISHED_EXAMPLE = b"\x00" * 5 + b"\x01Z00\x02AA\x1b bMessage\x04"
# The same with ETX and the checksum: 02+41+41+1B+20+62+"Message"(709)+03 = 1001 = 03E9.
WITH_CHECKSUM = b"\x00" * 5 + b"\x01Z00\x02AA\x1b bMessage\x0303E9\x04"
CALL_GB18030 = bytes.fromhex("c7eb 41303133 bac5 b5bd 34 bac5 b4b0 bfda")
"""请A013号到4号窗口 in GB18030 (the same bytes in GB2312)."""


def position(state: str, number: str | None = None, message: str | None = None) -> PositionView:
    return PositionView("w04", "4号窗口 商事登记", "张伟", state, number, message)


def window(*positions: PositionView) -> WindowDisplay:
    return WindowDisplay(list(positions), seq=1)


def board(
    calling: list[CallView], recent: list[CallView], waiting: list[WaitingView]
) -> BoardDisplay:
    return BoardDisplay(calling, recent, waiting, seq=1)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[SerialLine]:
    serial = serial_line(tmp_path)
    yield serial
    serial.close()


# ---------------------------------------------------------------- Alpha bytes


def test_alpha_packet_matches_the_published_example() -> None:
    packet = encode_alpha(["Message"], position=MIDDLE_LINE, mode=HOLD, checksum=False)
    assert packet == PUBLISHED_EXAMPLE


def test_alpha_checksum_sums_stx_through_etx() -> None:
    assert encode_alpha(["Message"], position=MIDDLE_LINE, mode=HOLD) == WITH_CHECKSUM


def test_alpha_checksum_is_four_upper_case_hex_digits_of_16_bits() -> None:
    assert alpha_checksum(bytes([0xFF]) * 300) == b"2AD4"  # 76500 mod 65536 = 10964


def test_alpha_header_carries_the_address_and_type_code() -> None:
    packet = encode_alpha(["HI"], address="0A", type_code="f", position=TOP_LINE, mode=HOLD)
    # 02+41+41+1B+22+62+48+49+03 = 439 = 01B7
    assert packet == b"\x00" * 5 + b'\x01f0A\x02AA\x1b"bHI\x0301B7\x04'


def test_each_line_starts_with_escape_position_and_mode() -> None:
    packet = encode_alpha(["A", "B"], position=BOTTOM_LINE, mode=HOLD)
    assert b"\x1b&bA\x1b&bB" in packet


def test_seven_e1_puts_even_parity_in_bit_seven() -> None:
    assert seven_e1(b"\x00\x01\x02\x03Z0") == bytes([0x00, 0x81, 0x82, 0x03, 0x5A, 0x30])


def test_alpha_refuses_characters_a_sign_cannot_show() -> None:
    with pytest.raises(ValueError, match="cannot show"):
        encode_alpha(["请"])


def test_alpha_refuses_a_malformed_address() -> None:
    with pytest.raises(ValueError, match="address"):
        encode_alpha(["x"], address="1")


def test_chinese_becomes_pinyin_for_an_alpha_sign() -> None:
    assert to_ascii("请A013号到4号窗口") == "qing A013 hao dao 4 hao chuang kou"


def test_full_width_punctuation_becomes_ascii() -> None:
    assert to_ascii("暂停服务：A013 → 4号") == "zan ting fu wu: A013 -> 4 hao"


# ----------------------------------------------------------------- text lines


def test_text_line_is_gb18030_then_cr_lf() -> None:
    assert encode_text(["请A013号到4号窗口"]) == CALL_GB18030 + b"\r\n"


def test_text_lines_follow_the_configured_encoding() -> None:
    assert encode_text(["号", "窗"], encoding="utf-8") == "号\r\n窗\r\n".encode()


def test_a_character_gb2312_lacks_goes_out_as_a_question_mark() -> None:
    assert encode_text(["王\U00020000"], encoding="gb2312") == "王".encode("gb2312") + b"?\r\n"


def test_a_newline_inside_a_line_cannot_split_it() -> None:
    assert encode_text(["A\r\nB"], encoding="ascii") == b"A  B\r\n"


def test_no_lines_sends_one_blank_line() -> None:
    assert encode_text([]) == b"\r\n"


# ------------------------------------------------------------------ rendering


def test_calling_window_asks_the_number_to_the_window() -> None:
    assert window_lines(window(position("calling", "A013"))) == ["请A013号到4号窗口"]


def test_paused_window_shows_the_pause_message() -> None:
    lines = window_lines(window(position("paused", message="工作人员暂时离开，请稍候")))
    assert lines == ["暂停服务：工作人员暂时离开，请稍候"]


def test_pause_message_that_says_paused_is_shown_as_is() -> None:
    message = "午间就餐暂停服务，急办事项请到一楼A区3号窗口"
    assert window_lines(window(position("paused", message=message))) == [message]


def test_paused_window_without_message_says_paused() -> None:
    assert window_lines(window(position("paused"))) == ["暂停服务"]


def test_idle_window_shows_its_name() -> None:
    assert window_lines(window(position("idle"))) == ["4号窗口 商事登记"]


def test_serving_window_shows_the_number_being_served() -> None:
    assert window_lines(window(position("serving", "A013"))) == ["A013号 正在办理"]


def test_window_without_staff_says_it_is_not_serving() -> None:
    assert window_lines(window(position("not_logged_in"))) == ["4号窗口 暂停服务"]


def test_two_positions_of_one_screen_get_a_line_each() -> None:
    first = PositionView("w12a", "12A号窗口 发票", "王芳", "calling", "K021", None)
    second = PositionView("w12b", "12B号窗口 发票", None, "paused", None, "暂停服务，请稍候")
    assert window_lines(window(first, second)) == ["请K021号到12A号窗口", "暂停服务，请稍候"]


def test_board_lists_calls_now_then_recent_then_queues() -> None:
    display = board(
        [CallView("A013", "4号窗口")],
        [CallView("Z031", "1号窗口")],
        [WaitingView("biz-setup", "企业设立登记", 7)],
    )
    assert board_lines(display, max_lines=4) == [
        "A013 → 4号窗口",
        "Z031 → 1号窗口",
        "企业设立登记 等候7人",
    ]


def test_board_keeps_calls_when_lines_run_out() -> None:
    display = board(
        [CallView("A013", "4号窗口"), CallView("K020", "12A号窗口")],
        [CallView("Z031", "1号窗口")],
        [WaitingView("biz-setup", "企业设立登记", 7)],
    )
    assert board_lines(display, max_lines=2) == ["A013 → 4号窗口", "K020 → 12A号窗口"]


def test_board_shows_a_call_once_when_it_is_also_recent() -> None:
    call = CallView("A013", "4号窗口")
    assert board_lines(board([call], [call], []), max_lines=3) == ["A013 → 4号窗口"]


def test_idle_board_says_no_calls() -> None:
    assert board_lines(board([], [], []), max_lines=2) == [IDLE_BOARD]


def test_board_needs_a_line() -> None:
    with pytest.raises(ValueError, match="at least one line"):
        board_lines(board([], [], []), max_lines=0)


# -------------------------------------------------------- simulator decoding


def test_simulator_shows_the_lines_of_an_alpha_packet() -> None:
    sim = LedSimulator(-1, protocol="alpha")
    sim.feed(seven_e1(encode_alpha(["qing A013", "dao 4 hao"])))
    assert sim.lines == ["qing A013", "dao 4 hao"]


def test_simulator_drops_a_packet_with_a_bad_checksum() -> None:
    sim = LedSimulator(-1, protocol="alpha")
    sim.feed(seven_e1(WITH_CHECKSUM.replace(b"03E9", b"03E8")))
    assert (sim.lines, sim.rejected) == ([], 1)


def test_simulator_drops_a_packet_with_a_parity_error() -> None:
    sim = LedSimulator(-1, protocol="alpha")
    wire = bytearray(seven_e1(WITH_CHECKSUM))
    wire[12] ^= 0x80
    sim.feed(bytes(wire))
    assert (sim.lines, sim.rejected) == ([], 1)


def test_simulator_ignores_a_packet_for_another_sign() -> None:
    sim = LedSimulator(-1, protocol="alpha", address="02")
    sim.feed(seven_e1(encode_alpha(["x"], address="01")))
    assert (sim.lines, sim.rejected) == ([], 0)


def test_simulator_takes_a_broadcast_packet() -> None:
    sim = LedSimulator(-1, protocol="alpha", address="02")
    sim.feed(seven_e1(encode_alpha(["x"], address="00")))
    assert sim.lines == ["x"]


def test_simulator_reads_the_published_example_without_checksum() -> None:
    sim = LedSimulator(-1, protocol="alpha")
    sim.feed(seven_e1(PUBLISHED_EXAMPLE))
    assert sim.files == {"A": ["Message"]}


def test_text_simulator_shows_its_last_rows() -> None:
    sim = LedSimulator(-1, protocol="text", rows=2)
    sim.feed(encode_text(["一", "二", "三"]))
    assert sim.lines == ["二", "三"]


# --------------------------------------------------------------- on a pty


async def test_text_strip_shows_chinese_in_gb18030(line: SerialLine) -> None:
    sim = LedSimulator(line.fd, protocol="text", rows=1)
    sim.start()
    strip = LedStrip(line.path, protocol="text", encoding="gb18030")
    await strip.open()
    try:
        await strip.show(window_lines(window(position("calling", "A013"))))
        await sim.wait_for(lambda s: s.lines == ["请A013号到4号窗口"])
        assert bytes(sim.received) == CALL_GB18030 + b"\r\n"
    finally:
        await strip.close()
        sim.stop()


async def test_alpha_strip_shows_pinyin_on_its_address(line: SerialLine) -> None:
    sim = LedSimulator(line.fd, protocol="alpha", address="01")
    sim.start()
    strip = LedStrip(line.path, protocol="alpha", address="01")
    await strip.open()
    try:
        await strip.show(["请A013号到4号窗口", "暂停服务"])
        await sim.wait_for(lambda s: s.updates == 1)
        assert sim.lines == ["qing A013 hao dao 4 hao chuang kou", "zan ting fu wu"]
        assert sim.rejected == 0
    finally:
        await strip.close()
        sim.stop()


async def test_show_on_an_unplugged_strip_raises_device_unavailable(line: SerialLine) -> None:
    strip = LedStrip(line.path, protocol="text")
    await strip.open()
    line.unplug()
    with pytest.raises(DeviceUnavailable):
        await strip.show(["x"])
    await strip.close()


async def test_strip_shows_again_after_replug(line: SerialLine) -> None:
    strip = LedStrip(line.path, protocol="text")
    await strip.open()
    line.unplug()
    with pytest.raises(DeviceUnavailable):
        await strip.show(["x"])
    line.replug()
    sim = LedSimulator(line.fd, protocol="text", rows=1)
    sim.start()
    try:
        await strip.open()
        await strip.show(["恢复"])
        await sim.wait_for(lambda s: s.lines == ["恢复"])
    finally:
        await strip.close()
        sim.stop()


async def test_opening_a_missing_port_raises_device_unavailable(tmp_path: Path) -> None:
    strip = LedStrip(str(tmp_path / "ttyNONE"), protocol="text")
    with pytest.raises(DeviceUnavailable):
        await strip.open()


async def test_show_before_open_raises_device_unavailable() -> None:
    with pytest.raises(DeviceUnavailable):
        await LedStrip("/dev/null-led", protocol="text").show(["x"])


def test_strip_refuses_an_unknown_encoding() -> None:
    with pytest.raises(LookupError):
        LedStrip("/dev/null-led", encoding="no-such-codec")


# -------------------------------------------------------------------- fuzz

ascii_lines = st.lists(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40), max_size=4
)


@FUZZ
@given(st.binary(max_size=600))
def test_alpha_decoder_survives_any_bytes(data: bytes) -> None:
    decoder = AlphaDecoder()
    for packet in decoder.feed(data):
        for command in packet.commands:
            write_text_lines(command)


@FUZZ
@given(st.binary(max_size=300), ascii_lines)
def test_valid_alpha_packet_after_garbage_is_shown(garbage: bytes, lines: list[str]) -> None:
    sim = LedSimulator(-1, protocol="alpha")
    sim.feed(garbage)
    sim.feed(seven_e1(encode_alpha(lines)))
    assert sim.lines == lines


@FUZZ
@given(ascii_lines, st.data())
def test_alpha_packet_damaged_in_its_checksummed_part_is_dropped(
    lines: list[str], data: st.DataObject
) -> None:
    packet = bytearray(encode_alpha(lines))
    etx = len(packet) - 6
    at = data.draw(st.integers(packet.index(0x02) + 1, len(packet) - 2).filter(lambda i: i != etx))
    packet[at] = data.draw(st.integers(0x20, 0x7E).filter(lambda b: b != packet[at]))
    sim = LedSimulator(-1, protocol="alpha")
    sim.feed(seven_e1(bytes(packet)))
    assert (sim.lines, sim.rejected) == ([], 1)


@FUZZ
@given(ascii_lines, st.data())
def test_mutated_alpha_packet_never_hides_the_next_one(
    lines: list[str], data: st.DataObject
) -> None:
    wire = bytearray(seven_e1(encode_alpha(["before"])))
    for _ in range(data.draw(st.integers(1, 4))):
        wire[data.draw(st.integers(0, len(wire) - 1))] = data.draw(st.integers(0, 255))
    sim = LedSimulator(-1, protocol="alpha")
    sim.feed(bytes(wire) + seven_e1(encode_alpha(lines)))
    assert sim.lines == lines


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["gb18030", "gb2312", "utf-8"]))
def test_text_decoder_survives_any_bytes(data: bytes, encoding: str) -> None:
    decoder = TextLineDecoder(encoding)
    assert all(isinstance(line, str) for line in decoder.feed(data))


@FUZZ
@given(st.binary(max_size=200), st.text(max_size=30))
def test_text_line_after_garbage_is_shown(garbage: bytes, text: str) -> None:
    sim = LedSimulator(-1, protocol="text", rows=1)
    sim.feed(garbage + b"\r\n")
    sim.feed(encode_text([text]))
    expected = text.replace("\r", " ").replace("\n", " ")
    assert sim.lines == [expected.encode("gb18030").decode("gb18030")]
