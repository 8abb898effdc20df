"""The edge agent end to end: simulated hardware speaking real bytes on ptys and sockets,
the production drivers, the agent's devices on a real Mosquitto, and the hall behind it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import asyncpg
import pytest

from devices import messages as m
from devices.client import DeviceClient
from drivers.agent import CardReaderDevice, EvaluationTerminalDevice, PrintingDevice
from drivers.keypad import keypad_id
from drivers.simulators.escpos import EscPosSimulator
from drivers.simulators.idcard import IdCardSimulator, build_text_block
from drivers.simulators.keypad import KeypadSimulator
from drivers.simulators.led import LedSimulator
from queueing.tickets import Source
from tests.agent_kit import AGENT_HALL, agent_config, agent_running, eventually, status
from tests.bus_kit import hall_on_bus
from tests.mqtt_kit import Mosquitto
from tests.pty_kit import SerialLine, serial_line

WANG = {
    "name": "王小明", "sex": "1", "nation": "01", "birth_date": "19491231",
    "address": "北京市东城区景山前街4号", "id_number": "11010519491231002X",
    "authority": "北京市公安局东城分局", "valid_from": "20200101", "valid_to": "20400101",
}


@pytest.fixture
def reader_line(tmp_path: Path) -> Iterator[SerialLine]:
    line = serial_line(tmp_path, "ttyIDCARD")
    yield line
    line.close()


@pytest.fixture
async def id_sim(reader_line: SerialLine) -> AsyncIterator[IdCardSimulator]:
    sim = IdCardSimulator(reader_line.fd)
    yield sim
    sim.detach()


def reader_device(line: SerialLine) -> dict[str, object]:
    return {"id": "reader-1", "kind": "card_reader",
            "card_reader": {"driver": "idcard", "url": line.path, "poll_seconds": 0.02}}


async def test_a_card_on_the_reader_reaches_the_hall_as_a_card_read(
    pool: asyncpg.Pool, mosquitto: Mosquitto, reader_line: SerialLine, id_sim: IdCardSimulator,
) -> None:
    async with hall_on_bus(pool, mosquitto, AGENT_HALL) as bus, agent_running(
            agent_config(mosquitto, [reader_device(reader_line)])) as agent:
        reader = agent.devices["reader-1"]
        assert isinstance(reader, CardReaderDevice)
        await eventually(lambda: status(bus.link, "reader-1").online)
        id_sim.place(build_text_block("resident", **WANG))  # type: ignore[arg-type]
        await eventually(lambda: reader.last_reply is not None)
        assert reader.last_reply is not None and reader.last_reply.ok, reader.last_reply


async def test_an_unplugged_reader_shows_on_the_wall_and_works_again_when_replugged(
    pool: asyncpg.Pool, mosquitto: Mosquitto, reader_line: SerialLine, id_sim: IdCardSimulator,
) -> None:
    async with hall_on_bus(pool, mosquitto, AGENT_HALL) as bus, agent_running(
            agent_config(mosquitto, [reader_device(reader_line)])) as agent:
        reader = agent.devices["reader-1"]
        assert isinstance(reader, CardReaderDevice)
        await eventually(lambda: len(id_sim.requests) >= 3)
        id_sim.detach()
        reader_line.unplug()
        await eventually(lambda: "reader_offline" in status(bus.link, "reader-1").errors)
        assert status(bus.link, "reader-1").online, "the agent itself is still on the bus"
        reader_line.replug()
        id_sim.attach(reader_line.fd)
        await eventually(lambda: "reader_offline" not in status(bus.link, "reader-1").errors,
                         timeout=10)
        id_sim.place(build_text_block("resident", **WANG))  # type: ignore[arg-type]
        await eventually(lambda: reader.last_reply is not None)
        assert reader.last_reply is not None and reader.last_reply.ok


# ------------------------------------------------------------------ printing


@pytest.fixture
async def printer() -> AsyncIterator[EscPosSimulator]:
    sim = EscPosSimulator()
    await sim.start()
    yield sim
    await sim.stop()


def kiosk_device(printer: EscPosSimulator) -> dict[str, object]:
    return {"id": "kiosk-1", "kind": "kiosk",
            "printer": {"url": f"tcp://127.0.0.1:{printer.port}", "status_seconds": 0.05}}


async def take_ticket(device: DeviceClient, request_id: str) -> m.Reply:
    return await device.request(m.TakeTicket(id=request_id, service="biz"))


async def test_a_ticket_taken_at_the_kiosk_comes_out_of_its_printer(
    pool: asyncpg.Pool, mosquitto: Mosquitto, printer: EscPosSimulator,
) -> None:
    async with hall_on_bus(pool, mosquitto, AGENT_HALL) as bus, agent_running(
            agent_config(mosquitto, [kiosk_device(printer)])) as agent:
        await bus.server.runtime.execute("login", "W1", "zhang")
        reply = await take_ticket(agent.devices["kiosk-1"], "take-printed-1")
        assert reply.ok, reply
        assert reply.result is not None
        ticket = reply.result["ticket"]
        await eventually(lambda: len(printer.roll.tickets) == 1)
    printed = printer.roll.tickets[0]
    text = "\n".join(printed.text_lines)
    assert ticket["number"] in text and "企业设立登记" in text and "测试政务服务中心" in text
    assert printed.qr_codes == [ticket["id"]]
    assert printed.cut == "full"


async def test_paper_out_reaches_the_hall_and_the_kiosk_stops_issuing(
    pool: asyncpg.Pool, mosquitto: Mosquitto, printer: EscPosSimulator,
) -> None:
    async with hall_on_bus(pool, mosquitto, AGENT_HALL) as bus, agent_running(
            agent_config(mosquitto, [kiosk_device(printer)])) as agent:
        await bus.server.runtime.execute("login", "W1", "zhang")
        await eventually(lambda: status(bus.link, "kiosk-1").online)
        printer.paper = "near_end"
        await eventually(lambda: status(bus.link, "kiosk-1").paper == "near_end")
        printer.paper = "out"
        await eventually(lambda: status(bus.link, "kiosk-1").paper == "out")
        reply = await take_ticket(agent.devices["kiosk-1"], "take-no-paper")
    assert not reply.ok and reply.error is not None
    assert reply.error.code == "printer_offline"
    assert printer.roll.empty


async def test_a_switched_off_printer_fails_its_job_at_once_and_is_reported(
    pool: asyncpg.Pool, mosquitto: Mosquitto, printer: EscPosSimulator,
) -> None:
    async with hall_on_bus(pool, mosquitto, AGENT_HALL) as bus, agent_running(
            agent_config(mosquitto, [kiosk_device(printer)])) as agent:
        kiosk = agent.devices["kiosk-1"]
        assert isinstance(kiosk, PrintingDevice)
        await eventually(lambda: status(bus.link, "kiosk-1").online)
        await printer.stop()
        await eventually(lambda: "printer_offline" in status(bus.link, "kiosk-1").errors)
        answers: list[m.Request] = []
        kiosk.on_sent = lambda message, retry: answers.append(message)  # type: ignore[method-assign]
        kiosk.on_command(m.PrintJob(id="job-while-off", ticket=TICKET))
        await eventually(lambda: any(isinstance(a, m.PrintFailed) for a in answers))
        refused = await take_ticket(kiosk, "take-while-off")
    failed = next(a for a in answers if isinstance(a, m.PrintFailed))
    assert failed.job == "job-while-off" and "offline" in failed.reason
    assert refused.error is not None and refused.error.code == "printer_offline"


TICKET = m.TicketPrint(
    number="A009", service_name="企业设立登记", people_ahead=2, estimated_minutes=12.0,
    direction="请到一楼A区1号窗口", materials=["身份证原件"], notice="过号请重新取号",
    issued_at=datetime(2026, 3, 16, 9, 41, tzinfo=timezone(timedelta(hours=8))), qr="t-A009")


# ------------------------------------------------------- a window on keypads


@pytest.fixture
def keypad_line(tmp_path: Path) -> Iterator[SerialLine]:
    line = serial_line(tmp_path, "ttyKEYPAD")
    yield line
    line.close()


@pytest.fixture
def led_line(tmp_path: Path) -> Iterator[SerialLine]:
    line = serial_line(tmp_path, "ttyLED")
    yield line
    line.close()


CALL_KEYPAD, RATING_KEYPAD = 0x0A1B2, 0x0A1B3


def window_devices(led: SerialLine, spoken: Path) -> list[dict[str, object]]:
    return [
        {"id": "term-w1", "kind": "call_terminal", "pause_reasons": ["break", "lunch"]},
        {"id": "eval-w1", "kind": "evaluation_terminal"},
        {"id": "led-w1", "kind": "led_strip",
         "led": {"url": led.path, "protocol": "text", "lines": 2, "refresh_seconds": 0.2}},
        {"id": "voice-1", "kind": "announcer",
         "announcer": {"engine": "espeak", "player": ["sh", "-c", f"cat >> {spoken}"]}},
    ]


async def test_a_clerk_works_a_ticket_with_wireless_keypads(
    pool: asyncpg.Pool, mosquitto: Mosquitto, keypad_line: SerialLine, led_line: SerialLine,
    tmp_path: Path,
) -> None:
    """Call on the call keypad → the hall calls, the LED strip shows it and the announcer
    says it; start, ask for a rating, the citizen rates on the rating keypad, finish."""
    keypads = KeypadSimulator(keypad_line.fd)
    keypads.start()
    strip = LedSimulator(led_line.fd, protocol="text", rows=2)
    strip.start()
    spoken = tmp_path / "spoken.wav"
    receiver = {"url": keypad_line.path, "keypads": {
        keypad_id(CALL_KEYPAD): "term-w1", keypad_id(RATING_KEYPAD): "eval-w1"}}
    config = agent_config(mosquitto, window_devices(led_line, spoken), [receiver])
    try:
        async with hall_on_bus(pool, mosquitto, AGENT_HALL) as bus, agent_running(config) as agent:
            engine = bus.server.runtime.engine
            await bus.server.runtime.execute("login", "W1", "zhang")
            await bus.server.runtime.execute("issue", "biz", Source.WALK_IN)
            await eventually(lambda: all(status(bus.link, d).online for d in agent.devices))

            await keypads.press(CALL_KEYPAD, 1)  # call next
            await eventually(lambda: engine.current_ticket("W1") is not None)
            current = engine.current_ticket("W1")
            assert current is not None and current.number == "A001"
            await eventually(lambda: any("A001" in line for line in strip.lines))
            await eventually(lambda: spoken.exists() and spoken.stat().st_size > 1000,
                             timeout=10)
            assert spoken.read_bytes()[:4] == b"RIFF"

            await keypads.press(CALL_KEYPAD, 4)  # start
            await eventually(lambda: engine.window_state("W1").value == "serving")
            rater = agent.devices["eval-w1"]
            assert isinstance(rater, EvaluationTerminalDevice)
            await keypads.press(CALL_KEYPAD, 8)  # ask for a rating
            await eventually(lambda: rater.asked is not None)
            await keypads.press(RATING_KEYPAD, 1)  # 非常满意
            await eventually(lambda: rater.last_reply is not None)
            assert rater.last_reply is not None and rater.last_reply.ok, rater.last_reply
            assert rater.last_reply.result == {"ticket": current.id, "rating": 5}

            await keypads.press(CALL_KEYPAD, 5)  # finish
            await eventually(lambda: engine.current_ticket("W1") is None)
    finally:
        keypads.stop()
        strip.stop()


async def test_an_led_strip_that_comes_back_shows_the_current_view_at_once(
    pool: asyncpg.Pool, mosquitto: Mosquitto, led_line: SerialLine, tmp_path: Path,
) -> None:
    strip = LedSimulator(led_line.fd, protocol="text", rows=2)
    strip.start()
    led = [d for d in window_devices(led_line, tmp_path / "x.wav") if d["id"] == "led-w1"]
    async with hall_on_bus(pool, mosquitto, AGENT_HALL) as bus, agent_running(
            agent_config(mosquitto, led)):
        await bus.server.runtime.execute("login", "W1", "zhang")
        await bus.server.runtime.execute("pause", "W1", "break", message="工作人员暂时离开")
        await eventually(lambda: any("暂时离开" in line for line in strip.lines))
        strip.stop()
        led_line.unplug()
        await eventually(lambda: "led_offline" in status(bus.link, "led-w1").errors)
        led_line.replug()
        strip = LedSimulator(led_line.fd, protocol="text", rows=2)
        strip.start()
        await eventually(lambda: any("暂时离开" in line for line in strip.lines), timeout=10)
        strip.stop()


async def test_an_led_strip_that_lost_power_gets_its_view_again(
    pool: asyncpg.Pool, mosquitto: Mosquitto, led_line: SerialLine, tmp_path: Path,
) -> None:
    strip = LedSimulator(led_line.fd, protocol="text", rows=2)
    strip.start()
    led = [d for d in window_devices(led_line, tmp_path / "x.wav") if d["id"] == "led-w1"]
    try:
        async with hall_on_bus(pool, mosquitto, AGENT_HALL) as bus, agent_running(
                agent_config(mosquitto, led)):
            await bus.server.runtime.execute("login", "W1", "zhang")
            await eventually(lambda: strip.lines[-1:] == ["1号窗口"])
            strip.lines = []  # power cut: the strip comes back blank and says nothing
            await eventually(lambda: strip.lines[-1:] == ["1号窗口"])
    finally:
        strip.stop()
