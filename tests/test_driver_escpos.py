"""The ticket printer driver against the ESC/POS simulator: what comes out on the paper,
what the status bytes mean, and how the driver behaves when the printer cannot print."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.messages import Health, TicketPrint
from drivers.errors import DeviceUnavailable, ProtocolError
from drivers.escpos_printer import (
    COVER_OPEN_REASON,
    FAULT_REASON,
    PAPER_OUT_REASON,
    Endpoint,
    PrinterNotReady,
    PrinterStatus,
    TicketPrinter,
    parse_status,
    parse_statuses,
    parse_url,
    render_ticket,
    text_columns,
    wrap,
)
from drivers.simulators.escpos import EscPosDecoder, EscPosSimulator, Ticket
from tests.pty_kit import serial_line

HALL = "市民中心政务服务大厅"
LONG_MATERIAL = (
    "住所使用证明，如房产证复印件或者租赁合同以及出租方的房产证明材料原件和复印件"
    " (copies on A4 paper, signed by the legal representative)"
)


def make_ticket(**changes: object) -> TicketPrint:
    fields: dict[str, object] = {
        "number": "A013",
        "service_name": "企业设立登记",
        "people_ahead": 7,
        "estimated_minutes": 34.2,
        "direction": "请到一楼A区 4-6 号商事登记窗口",
        "materials": ["全体股东身份证原件", "公司章程", LONG_MATERIAL],
        "notice": "请留意叫号，过号请重新取号",
        "issued_at": "2026-03-16T09:41:07+08:00",
        "qr": "20260316-A013",
    }
    fields.update(changes)
    return msgspec.convert(fields, TicketPrint)


def printed(data: bytes) -> Ticket:
    """Run the bytes through a fresh simulated printer; exactly one cut ticket comes out."""
    decoder = EscPosDecoder(lambda n: 0x12)
    assert decoder.feed(data) == b""
    assert len(decoder.roll.tickets) == 1
    assert not decoder.roll.pending.items
    return decoder.roll.tickets[0]


# --------------------------------------------------------------------- layout


def test_number_prints_double_width_and_height_and_the_size_goes_back() -> None:
    ticket = printed(render_ticket(make_ticket(), hall_name=HALL))
    [number] = ticket.spans_of("A013")
    assert number.text == "A013" and number.width == 2 and number.height == 2
    others = [s for line in ticket.lines for s in line.spans if s is not number]
    assert others and all((s.width, s.height) == (1, 1) for s in others)


def test_hall_and_service_names_print_in_chinese_centred() -> None:
    ticket = printed(render_ticket(make_ticket(), hall_name=HALL))
    lines = {line.text: line for line in ticket.lines}
    assert lines[HALL].align == "center"
    assert lines["企业设立登记"].align == "center"
    assert ticket.text_lines[:3] == [HALL, "A013", "企业设立登记"]


def test_people_ahead_estimate_and_direction_are_on_the_ticket() -> None:
    text = printed(render_ticket(make_ticket(), hall_name=HALL)).text_lines
    assert "前面等候：7 人" in text
    assert "预计等候：约 35 分钟" in text
    assert "办理地点：请到一楼A区 4-6 号商事登记窗口" in text
    assert "请留意叫号，过号请重新取号" in text


def test_window_hint_prints_under_the_direction() -> None:
    text = printed(
        render_ticket(make_ticket(), hall_name=HALL, window_hint="4号窗口 商事登记")
    ).text_lines
    direction = text.index("办理地点：请到一楼A区 4-6 号商事登记窗口")
    assert text[direction + 1] == "4号窗口 商事登记"


def test_missing_queue_figures_are_left_out_rather_than_invented() -> None:
    text = printed(
        render_ticket(
            make_ticket(people_ahead=None, estimated_minutes=float("nan")), hall_name=HALL
        )
    ).text_lines
    assert not [line for line in text if line.startswith(("前面等候", "预计等候"))]


def test_materials_are_bulleted_and_wrapped_to_the_paper_width() -> None:
    ticket = printed(render_ticket(make_ticket(), hall_name=HALL))
    text = ticket.text_lines
    start = text.index("所需材料：")
    assert text[start + 1 : start + 3] == ["· 全体股东身份证原件", "· 公司章程"]
    long_lines = text[start + 3 : start + 6]
    assert long_lines[0].startswith("· 住所使用证明")
    assert "".join(line.removeprefix("· ") for line in long_lines).replace(" ", "") == (
        LONG_MATERIAL.replace(" ", "")
    )
    assert not any(line.auto_wrapped for line in ticket.lines)
    assert all(text_columns(line.text) <= 48 for line in ticket.lines)


def test_narrow_paper_is_respected_too() -> None:
    decoder = EscPosDecoder(lambda n: 0x12, columns=32)
    decoder.feed(render_ticket(make_ticket(), hall_name=HALL, columns=32))
    [ticket] = decoder.roll.tickets
    assert not any(line.auto_wrapped for line in ticket.lines)


def test_wrap_counts_a_chinese_character_as_two_columns() -> None:
    assert wrap("一二三四五", 6) == ["一二三", "四五"]
    assert wrap("ab 一二 cd", 5) == ["ab 一", "二 cd"]
    assert wrap("甲乙丙丁", 7, indent="· ", hang="   ") == ["· 甲乙", "   丙丁"]


def test_qr_code_carries_the_tickets_qr_content() -> None:
    ticket = printed(render_ticket(make_ticket(), hall_name=HALL))
    assert ticket.qr_codes == ["20260316-A013"]
    assert ticket.barcodes == []


def test_code128_barcode_is_printed_when_configured() -> None:
    ticket = printed(render_ticket(make_ticket(qr="A{13}-x"), hall_name=HALL, symbol="code128"))
    [barcode] = ticket.barcodes
    assert (barcode.symbology, barcode.data) == ("CODE128", "A{13}-x")
    assert ticket.qr_codes == []


def test_code128_falls_back_to_qr_for_chinese_content() -> None:
    ticket = printed(render_ticket(make_ticket(qr="预约A013"), hall_name=HALL, symbol="code128"))
    assert ticket.qr_codes == ["预约A013"] and ticket.barcodes == []


def test_ticket_ends_with_a_feed_and_a_cut_after_the_issue_time() -> None:
    ticket = printed(render_ticket(make_ticket(), hall_name=HALL))
    assert ticket.cut == "full"
    assert ticket.text_lines[-1] == "取号时间：2026-03-16 09:41:07"
    assert [line.text for line in ticket.lines[-3:]] == ["", "", ""]


def test_issue_time_is_printed_in_the_tickets_own_offset() -> None:
    instant = datetime(2026, 3, 16, 9, 41, 7, tzinfo=timezone(timedelta(hours=8)))
    utc = printed(render_ticket(make_ticket(issued_at=instant.astimezone(UTC)), hall_name=HALL))
    assert utc.text_lines[-1] == "取号时间：2026-03-16 01:41:07"


def test_chinese_text_is_sent_as_gb18030_after_chinese_mode_is_switched_on() -> None:
    data = render_ticket(make_ticket(), hall_name=HALL)
    service = "企业设立登记".encode("gb18030")
    assert service in data
    assert data.index(b"\x1c&") < data.index(HALL.encode("gb18030"))
    assert b"\x1c." not in data


def test_rare_character_outside_gbk_round_trips_through_gb18030() -> None:
    rare = "䶮𠀀"
    with pytest.raises(UnicodeEncodeError):
        rare.encode("gbk")
    data = render_ticket(make_ticket(service_name=f"{rare}姓名变更"), hall_name=HALL)
    assert rare.encode("gb18030") in data
    assert bytes.fromhex("95 32 82 36") in data
    assert f"{rare}姓名变更" in printed(data).text_lines


def test_control_characters_in_ticket_text_cannot_become_commands() -> None:
    ticket = printed(
        render_ticket(make_ticket(materials=["身份证\x1dV\x00原件\n复印件"]), hall_name=HALL)
    )
    assert "· 身份证 V 原件 复印件" in ticket.text_lines


# --------------------------------------------------------------------- status


@pytest.mark.parametrize(
    ("n", "byte", "expected", "health"),
    [
        (4, 0x12, PrinterStatus(), Health()),
        (4, 0x1E, PrinterStatus(paper="near_end"), Health(paper="near_end")),
        (4, 0x16, PrinterStatus(paper="near_end"), Health(paper="near_end")),
        (4, 0x7E, PrinterStatus(paper="out"), Health(paper="out")),
        (4, 0x32, PrinterStatus(paper="out"), Health(paper="out")),
        (2, 0x16, PrinterStatus(cover="open"), Health(cover="open")),
        (2, 0x32, PrinterStatus(paper="out"), Health(paper="out")),
        (2, 0x1A, PrinterStatus(errors=("feed_button",)), Health(errors=["feed_button"])),
        (1, 0x1A, PrinterStatus(online=False), Health(errors=["offline"])),
        (3, 0x1A, PrinterStatus(errors=("cutter",)), Health(errors=["cutter"])),
        (3, 0x32, PrinterStatus(errors=("unrecoverable",)), Health(errors=["unrecoverable"])),
        (3, 0x52, PrinterStatus(errors=("auto_recoverable",)), Health(errors=["auto_recoverable"])),
    ],
)
def test_each_status_bit_parses_and_maps_to_health(
    n: int, byte: int, expected: PrinterStatus, health: Health
) -> None:
    status = parse_status(n, byte)
    assert status == expected
    assert status.health() == health


def test_the_four_replies_combine_into_one_status() -> None:
    status = parse_statuses({1: 0x1A, 2: 0x76, 3: 0x1A, 4: 0x7E})
    assert status == PrinterStatus(
        online=False, paper="out", cover="open", errors=("cutter",)
    )
    assert status.health() == Health(paper="out", cover="open", errors=["cutter", "offline"])


@pytest.mark.parametrize("byte", [0x00, 0xFF, 0x10, 0x02, 0x92, 0x13, 0x3F])
def test_status_byte_with_wrong_fixed_bits_is_a_protocol_error(byte: int) -> None:
    with pytest.raises(ProtocolError):
        parse_status(4, byte)


def test_refusal_reasons_are_for_the_citizen() -> None:
    assert PrinterStatus(paper="out", cover="open").refusal() == PAPER_OUT_REASON
    assert PrinterStatus(cover="open").refusal() == COVER_OPEN_REASON
    assert PrinterStatus(errors=("cutter",)).refusal() == FAULT_REASON
    assert PrinterStatus(online=False).refusal() == FAULT_REASON
    assert PrinterStatus(paper="near_end", errors=("feed_button",)).refusal() is None


def test_simulator_answers_status_with_the_fixed_bits_right() -> None:
    sim = EscPosSimulator()
    sim.paper, sim.cover, sim.cutter_error = "near_end", "open", True
    replies = sim.decoder.feed(b"\x10\x04\x01\x10\x04\x02\x10\x04\x03\x10\x04\x04")
    assert parse_statuses(dict(zip((1, 2, 3, 4), replies, strict=True))) == PrinterStatus(
        online=False, paper="near_end", cover="open", errors=("cutter",)
    )


# ------------------------------------------------------------------ transport


def test_urls_pick_the_transport() -> None:
    assert parse_url("tcp://10.0.0.7") == Endpoint("tcp", "10.0.0.7", 9100)
    assert parse_url("tcp://10.0.0.7:9101") == Endpoint("tcp", "10.0.0.7", 9101)
    assert parse_url("serial:///dev/ttyUSB0?baudrate=19200") == Endpoint(
        "serial", "/dev/ttyUSB0", 19200
    )
    assert parse_url("/dev/ttyS1") == Endpoint("serial", "/dev/ttyS1", 9600)
    assert parse_url("usb://04b8:0e15") == Endpoint(
        "usb", "04b8:0e15", vendor=0x04B8, product=0x0E15
    )
    with pytest.raises(ValueError):
        parse_url("usb://printer")


@pytest.fixture
async def sim() -> AsyncIterator[EscPosSimulator]:
    simulator = EscPosSimulator()
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def printer(sim: EscPosSimulator) -> AsyncIterator[TicketPrinter]:
    driver = TicketPrinter(f"tcp://127.0.0.1:{sim.port}", timeout=0.5)
    await driver.open()
    yield driver
    await driver.close()


async def test_ticket_printed_over_tcp_comes_out_of_the_printer(
    sim: EscPosSimulator, printer: TicketPrinter
) -> None:
    await printer.print_ticket(make_ticket(), hall_name=HALL)
    [ticket] = sim.roll.tickets
    assert ticket.text_lines[1] == "A013" and ticket.qr_codes == ["20260316-A013"]
    assert ticket.cut == "full"


async def test_status_over_tcp_reports_paper_near_end(
    sim: EscPosSimulator, printer: TicketPrinter
) -> None:
    sim.paper = "near_end"
    status = await printer.status()
    assert status == PrinterStatus(paper="near_end")
    assert status.health() == Health(paper="near_end")


async def test_near_end_still_prints(sim: EscPosSimulator, printer: TicketPrinter) -> None:
    sim.paper = "near_end"
    await printer.print_ticket(make_ticket(), hall_name=HALL)
    assert len(sim.roll.tickets) == 1


async def test_print_is_refused_when_paper_is_out_and_nothing_is_printed(
    sim: EscPosSimulator, printer: TicketPrinter
) -> None:
    sim.paper = "out"
    with pytest.raises(PrinterNotReady) as refused:
        await printer.print_ticket(make_ticket(), hall_name=HALL)
    assert str(refused.value) == PAPER_OUT_REASON
    assert refused.value.status.health().paper == "out"
    assert sim.roll.empty
    assert sim.status_requests == 4


async def test_print_is_refused_when_the_cover_is_open(
    sim: EscPosSimulator, printer: TicketPrinter
) -> None:
    sim.cover = "open"
    with pytest.raises(PrinterNotReady, match=COVER_OPEN_REASON):
        await printer.print_ticket(make_ticket(), hall_name=HALL)
    assert sim.roll.empty


async def test_roll_running_out_mid_ticket_is_reported(
    sim: EscPosSimulator, printer: TicketPrinter
) -> None:
    sim.decoder.lines_left = 4
    with pytest.raises(PrinterNotReady, match=PAPER_OUT_REASON):
        await printer.print_ticket(make_ticket(), hall_name=HALL)
    [ticket] = sim.roll.tickets
    assert ticket.text_lines == [HALL, "A013", "企业设立登记"] and ticket.qr_codes == []
    assert (await printer.status()).health() == Health(paper="out", errors=["offline"])


async def test_unreachable_printer_is_unavailable_fast() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    driver = TicketPrinter(f"tcp://127.0.0.1:{port}", timeout=2.0)
    started = time.monotonic()
    with pytest.raises(DeviceUnavailable):
        await driver.status()
    assert time.monotonic() - started < 0.5


async def test_silent_printer_is_unavailable_after_the_timeout(sim: EscPosSimulator) -> None:
    sim.mute = True
    driver = TicketPrinter(f"tcp://127.0.0.1:{sim.port}", timeout=0.2)
    started = time.monotonic()
    with pytest.raises(DeviceUnavailable, match="DLE EOT 1"):
        await driver.status()
    assert 0.15 < time.monotonic() - started < 1.0
    await driver.close()


async def test_garbage_status_reply_over_tcp_is_a_protocol_error(
    sim: EscPosSimulator, printer: TicketPrinter
) -> None:
    sim.status_override[2] = 0x00
    with pytest.raises(ProtocolError):
        await printer.status()
    del sim.status_override[2]
    assert await printer.status() == PrinterStatus()


async def test_lost_connection_is_unavailable_and_the_next_call_reconnects(
    sim: EscPosSimulator, printer: TicketPrinter
) -> None:
    await sim.drop_connections()
    await asyncio.sleep(0.01)
    with pytest.raises(DeviceUnavailable):
        await printer.print_ticket(make_ticket(), hall_name=HALL)
    assert sim.roll.empty
    await printer.print_ticket(make_ticket(), hall_name=HALL)
    assert len(sim.roll.tickets) == 1


async def test_usb_printer_that_is_not_plugged_in_is_unavailable() -> None:
    with pytest.raises(DeviceUnavailable):
        await TicketPrinter("usb://04b8:0e15", timeout=0.2).open()


async def test_ticket_printed_over_a_pty_comes_out_of_the_printer(tmp_path: Path) -> None:
    line = serial_line(tmp_path)
    sim = EscPosSimulator()
    sim.attach(line.fd)
    driver = TicketPrinter(f"serial://{line.path}?baudrate=19200", timeout=0.5)
    try:
        sim.paper = "near_end"
        assert (await driver.status()).paper == "near_end"
        await driver.print_ticket(make_ticket(), hall_name=HALL)
        [ticket] = sim.roll.tickets
        assert "企业设立登记" in ticket.text_lines and ticket.qr_codes == ["20260316-A013"]
    finally:
        await driver.close()
        sim.detach()
        line.close()


async def test_unplugged_serial_printer_is_unavailable(tmp_path: Path) -> None:
    line = serial_line(tmp_path)
    sim = EscPosSimulator()
    sim.attach(line.fd)
    driver = TicketPrinter(line.path, timeout=0.3)
    try:
        assert await driver.status() == PrinterStatus()
        sim.detach()
        line.unplug()
        with pytest.raises(DeviceUnavailable):
            await driver.status()
        with pytest.raises(DeviceUnavailable):
            await driver.status()
    finally:
        await driver.close()
        line.close()


# ----------------------------------------------------------------------- fuzz


def pieces(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    return [data[start:end] for start, end in itertools.pairwise(edges)]


COMMAND_PREFIXES = [
    b"\x1b", b"\x1d", b"\x1c", b"\x10", b"\x10\x04", b"\x1d(k", b"\x1dk", b"\x1dkI",
    b"\x1dV", b"\x1dv0", b"\x1d8L", b"\x1b*", b"\x1bD", b"\x1c&", b"\x81", b"\x810", b"\n",
]
streams = st.lists(
    st.one_of(st.binary(max_size=12), st.sampled_from(COMMAND_PREFIXES)), max_size=60
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=streams, cuts=st.lists(st.integers(0, 600), max_size=6))
def test_decoder_survives_random_bytes_in_any_pieces(data: bytes, cuts: list[int]) -> None:
    decoder = EscPosDecoder(lambda n: 0x12 | n << 2 & 0x0C)
    for piece in pieces(data, cuts):
        reply = decoder.feed(piece)
        assert all(b & 0x93 == 0x12 for b in reply)
    decoder.discard_partial()
    assert decoder.feed(render_ticket(make_ticket(), hall_name=HALL)) == b""
    assert decoder.roll.tickets[-1].qr_codes == ["20260316-A013"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_decoder_reads_the_same_ticket_however_the_bytes_are_split(cuts: list[int]) -> None:
    data = render_ticket(make_ticket(service_name="䶮𠀀变更"), hall_name=HALL)
    whole = printed(data)
    decoder = EscPosDecoder(lambda n: 0x12)
    for piece in pieces(data, cuts):
        decoder.feed(piece)
    assert decoder.roll.tickets == [whole]


@settings(max_examples=100, deadline=None)
@given(
    number=st.text(max_size=30),
    service=st.text(max_size=60),
    direction=st.text(max_size=120),
    materials=st.lists(st.text(max_size=150), max_size=4),
    qr=st.text(max_size=60),
)
def test_any_ticket_text_prints_as_one_ticket_within_the_paper(
    number: str, service: str, direction: str, materials: list[str], qr: str
) -> None:
    ticket = printed(
        render_ticket(
            make_ticket(
                number=number, service_name=service, direction=direction, materials=materials, qr=qr
            ),
            hall_name=HALL,
        )
    )
    assert not any(line.auto_wrapped for line in ticket.lines)
    assert ticket.qr_codes == ([qr] if qr else [])
    assert ticket.cut == "full"


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 4), byte=st.integers(-3, 300))
def test_parse_status_parses_or_refuses_every_byte(n: int, byte: int) -> None:
    try:
        status = parse_status(n, byte)
    except ProtocolError:
        assert not 0 <= byte <= 255 or byte & 0x93 != 0x12
    else:
        assert byte & 0x93 == 0x12
        assert isinstance(status.health(), Health)
