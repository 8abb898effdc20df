"""The edge agent: the hardware of one kiosk or window PC, on the hall's device bus.

``python run_hall.py agent --config config/agent-kiosk-1.toml`` opens what the file
lists and connects each hall device to the broker under its own id (one MQTT
connection per device, for its own last will), exactly as docs/mqtt.md asks of any
device. What each device does:

- kiosk / printer: prints ``printer.print`` jobs on its ESC/POS printer and answers
  ``printer.done`` or ``printer.failed``; polls paper and cover and publishes them as
  health, so tickets are refused before a citizen is handed nothing;
- card reader: publishes ``card.read`` for each card placed on its reader (resident ID
  card over the serial SAM protocol, or a citizen card over PC/SC);
- LED strip: shows the view the hall keeps retained on its ``display`` topic, and shows
  it again whenever the strip comes back;
- announcer: says each ``announcer.say`` aloud;
- document camera: for each ``camera.scan``, captures, straightens and crops the page,
  uploads it to the case over HTTP and answers ``camera.scanned`` or ``camera.failed``;
- call and evaluation terminals on wireless keypads: a keypad receiver's key presses
  become the terminal's requests (call next, recall, ... ; a rating).

Hardware that goes away (a pulled USB-serial adapter, a printer switched off) is
reported in the device's health and reopened with backoff; the bus connection and the
other devices carry on. This module never imports ``hall``: the PC runs no server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from devices import messages as m
from devices.client import DeviceClient, redacted
from devices.topics import DeviceKind
from drivers.agent_config import (
    AgentConfig,
    AgentDevice,
    IdCardHardware,
    KeypadReceiver,
    PcscHardware,
)
from drivers.announcer import Announcer, ClipSynth, EspeakSynth, Synth
from drivers.camera import Capture, Image, encode_jpeg, encode_pdf, scan, upload
from drivers.errors import DeviceUnavailable, DriverError
from drivers.escpos_printer import TicketPrinter
from drivers.idcard import IdCardReader
from drivers.keypad import CallKeymap, EvaluationKeymap, to_request
from drivers.keypad import KeypadReceiver as Receiver
from drivers.led import LedStrip, board_lines, window_lines
from drivers.supervise import keep_using

log = logging.getLogger(__name__)


def new_id() -> str:
    """A fresh idempotency key: a new id is a new action by a person."""
    return uuid.uuid4().hex


class AgentDeviceClient(DeviceClient):
    """A hall device whose health is the union of what its hardware reports."""

    def __init__(self, config: AgentConfig, spec: AgentDevice) -> None:
        super().__init__(
            config.agent.hall, spec.id, spec.kind, config.agent.mqtt_url,
            password=config.password(spec), firmware=config.agent.firmware,
            config_version=config.agent.config_version,
        )
        self.config = config
        self.spec = spec
        self.health = m.Health()
        self.detail: dict[str, Any] = {}

    def state(self) -> m.DeviceState:
        return m.DeviceState(health=self.health, detail=self.detail)

    async def set_health(self, health: m.Health) -> None:
        if health != self.health:
            self.health = health
            await self.publish_state()

    async def hardware(self, up: bool, why: str, error_code: str) -> None:
        """A piece of hardware came or went: ``error_code`` is in the health's errors
        while it is away, and ``detail`` says why, for whoever looks at the wall."""
        errors = [e for e in self.health.errors if e != error_code]
        if not up:
            errors.append(error_code)
            self.detail = {**self.detail, error_code: why}
        else:
            self.detail = {k: v for k, v in self.detail.items() if k != error_code}
        await self.set_health(m.Health(paper=self.health.paper, cover=self.health.cover,
                                       errors=errors))


# ------------------------------------------------------------------ printers


class PrintingDevice(AgentDeviceClient):
    """A kiosk with its printer built in, or a stand-alone ticket printer."""

    def __init__(self, config: AgentConfig, spec: AgentDevice) -> None:
        super().__init__(config, spec)
        assert spec.printer is not None
        self.printer_spec = spec.printer
        self._printer: TicketPrinter | None = None
        self._jobs: asyncio.Queue[m.PrintJob] = asyncio.Queue()

    async def behave(self) -> None:
        async def open_printer() -> TicketPrinter:
            printer = TicketPrinter(self.printer_spec.url)
            await printer.open()
            return printer

        await keep_using(f"{self.id} printer", open_printer, self._use,
                         lambda up, why: self.hardware(up, why, "printer_offline"))

    async def _use(self, printer: TicketPrinter) -> None:
        """Watch paper and cover, and print the jobs, one at a time (a printer prints one
        ticket at a time anyway, and a status query between two jobs is exact)."""
        self._printer = printer
        try:
            await self._check(printer)
            while True:
                try:
                    async with asyncio.timeout(self.printer_spec.status_seconds):
                        job = await self._jobs.get()
                except TimeoutError:
                    await self._check(printer)
                    continue
                await self._print(printer, job)
        finally:
            self._printer = None

    async def _check(self, printer: TicketPrinter) -> None:
        status = await printer.status()
        health = status.health()
        errors = sorted({*health.errors, *(e for e in self.health.errors
                                            if e != "printer_offline")})
        await self.set_health(m.Health(paper=health.paper, cover=health.cover, errors=errors))

    async def _print(self, printer: TicketPrinter, job: m.PrintJob) -> None:
        try:
            await printer.print_ticket(job.ticket, hall_name=self.config.agent.hall_name)
        except DeviceUnavailable as error:
            self.spawn(self._answer(job, f"printer offline: {error}"))
            raise
        except DriverError as error:
            self.spawn(self._answer(job, str(error)))
            await self._check(printer)
        else:
            self.spawn(self._answer(job, None))
            await self._check(printer)

    async def _answer(self, job: m.PrintJob, failure: str | None) -> None:
        message: m.Request = (
            m.PrintDone(id=new_id(), job=job.id) if failure is None
            else m.PrintFailed(id=new_id(), job=job.id, reason=failure[:200])
        )
        reply = await self.request(message)
        if not reply.ok:
            log.warning("%s: the hall refused %s: %s", self.id, message.type, reply.error)

    def on_command(self, command: m.Command) -> None:
        if not isinstance(command, m.PrintJob):
            super().on_command(command)
        elif self._printer is None:
            # Fail fast: the citizen is at the kiosk now, not when the printer is back.
            self.spawn(self._answer(command, "printer offline"))
        else:
            self._jobs.put_nowait(command)


# ---------------------------------------------------------------- card readers


class CardReaderDevice(AgentDeviceClient):
    """Publishes ``card.read`` for each card put on the reader; what the hall answers
    (the holder's tickets and appointments) is logged for the window's screen."""

    def __init__(self, config: AgentConfig, spec: AgentDevice) -> None:
        super().__init__(config, spec)
        assert spec.card_reader is not None
        self.reader_spec = spec.card_reader
        self.last_reply: m.Reply | None = None

    async def behave(self) -> None:
        spec = self.reader_spec
        if isinstance(spec, IdCardHardware):
            async def open_idcard() -> IdCardReader:
                reader = IdCardReader(spec.url, baudrate=spec.baudrate)
                await reader.open()
                return reader

            await keep_using(f"{self.id} reader", open_idcard, self._watch_idcard,
                             lambda up, why: self.hardware(up, why, "reader_offline"))
        else:
            await self._pcsc(spec)

    async def _watch_idcard(self, reader: IdCardReader) -> None:
        assert isinstance(self.reader_spec, IdCardHardware)
        async for card in reader.watch(self.reader_spec.poll_seconds):
            try:
                identity = card.identity()
            except ValueError as error:
                log.warning("%s: a card the bus cannot carry: %s", self.id, error)
                continue
            self.spawn(self._publish(identity))

    async def _pcsc(self, spec: PcscHardware) -> None:
        # Imported only here: pyscard is installed only where a PC/SC reader is
        # (requirements-pcsc.txt), and it needs pcscd's client library.
        from drivers.pcsc import ApduStep, PcscReader

        script = [ApduStep(s.name, bytes.fromhex(s.apdu), bytes.fromhex(s.expect_sw))
                  for s in spec.script]

        async def open_pcsc() -> Any:
            return PcscReader(spec.reader, script=script)

        async def watch(reader: Any) -> None:
            async for read in reader.watch():
                identity = _citizen_identity(read.responses)
                if identity is None:
                    log.warning("%s: a card without an ID number (uid %s); script responses "
                                "named id_number and name are what the hall needs",
                                self.id, read.uid.hex() if read.uid else "?")
                    continue
                self.spawn(self._publish(identity))

        await keep_using(f"{self.id} reader", open_pcsc, watch,
                         lambda up, why: self.hardware(up, why, "reader_offline"))

    async def _publish(self, identity: m.Identity) -> None:
        reply = await self.request(m.CardRead(id=new_id(), identity=identity))
        self.last_reply = reply
        if not reply.ok:
            log.warning("%s: the hall refused a card read: %s", self.id, reply.error)


def _citizen_identity(responses: dict[str, bytes]) -> m.Identity | None:
    """A citizen card's script names the steps that read the holder's ID number and name
    (``id_number``, ``name``); cards differ per city, the names are the contract."""
    raw_number = responses.get("id_number")
    if not raw_number:
        return None
    number = raw_number.decode("ascii", "replace").strip("\x00 \uFFFD")
    raw_name = responses.get("name")
    name = raw_name.decode("gb18030", "replace").strip("\x00 ") if raw_name else None
    try:
        return m.Identity(id_number=number, name=name or None)
    except (m.MessageError, ValueError):
        log.warning("a citizen card's id_number is not an ID number")
        return None


# --------------------------------------------------------------------- LED


class LedDevice(AgentDeviceClient):
    """Shows the latest view; a strip that comes back gets it again at once."""

    def __init__(self, config: AgentConfig, spec: AgentDevice) -> None:
        super().__init__(config, spec)
        assert spec.led is not None
        self.led_spec = spec.led
        self._lines: list[str] = []
        self._changed = asyncio.Event()

    def on_display(self, display: m.Display) -> None:
        if isinstance(display, m.WindowDisplay):
            self._lines = window_lines(display)
        elif isinstance(display, m.BoardDisplay):
            self._lines = board_lines(display, max_lines=self.led_spec.lines)
        else:
            return  # signage is for screens; a strip keeps its text lines
        self._changed.set()

    async def behave(self) -> None:
        spec = self.led_spec

        async def open_strip() -> LedStrip:
            strip = LedStrip(spec.url, protocol=spec.protocol, address=spec.address,
                             encoding=spec.encoding, baudrate=spec.baudrate)
            await strip.open()
            return strip

        await keep_using(f"{self.id} strip", open_strip, self._show,
                         lambda up, why: self.hardware(up, why, "led_offline"))

    async def _show(self, strip: LedStrip) -> None:
        """Send the view when it changes, and again every ``refresh_seconds``: a strip
        that lost power comes back blank, and says nothing about it. An unplugged port
        closes the line by itself, which is checked every second."""
        refresh = self.led_spec.refresh_seconds
        loop = asyncio.get_running_loop()
        due = loop.time()  # a strip just (re)opened shows the latest view at once
        while True:
            if not strip.is_open:
                raise DeviceUnavailable(f"LED strip {strip.url} is gone")
            if self._changed.is_set() or loop.time() >= due:
                self._changed.clear()
                await strip.show(list(self._lines))
                due = loop.time() + refresh
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(1.0, max(0.0, due - loop.time()))):
                    await self._changed.wait()


# ---------------------------------------------------------------- announcer


class AnnouncerDevice(AgentDeviceClient):
    """Says each call aloud, one at a time; a recall still waiting is said once."""

    def __init__(self, config: AgentConfig, spec: AgentDevice) -> None:
        super().__init__(config, spec)
        assert spec.announcer is not None
        hardware = spec.announcer
        synth: Synth = (ClipSynth(hardware.clips) if hardware.engine == "clips" and hardware.clips
                        else EspeakSynth())
        self.announcer = Announcer(synth, player=hardware.player, repeat=hardware.repeat)

    def on_command(self, command: m.Command) -> None:
        if isinstance(command, m.Announce):
            self.spawn(self.announcer.say(command.text, command.language))
        else:
            super().on_command(command)

    async def behave(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await self.announcer.aclose()


# ------------------------------------------------------------ document camera


class DocumentCameraDevice(AgentDeviceClient):
    """Scans what lies under the camera into a case when the hall says ``camera.scan``.

    One job at a time (a camera sees one sheet at a time); the image work runs in a
    worker thread so the bus connection keeps answering meanwhile."""

    def __init__(self, config: AgentConfig, spec: AgentDevice) -> None:
        super().__init__(config, spec)
        assert spec.camera is not None
        self.camera_spec = spec.camera
        self.capture = Capture(spec.camera.source, width=spec.camera.width,
                               height=spec.camera.height)
        self._jobs: asyncio.Queue[m.ScanDocument] = asyncio.Queue()
        self.last_reply: m.Reply | None = None

    def on_command(self, command: m.Command) -> None:
        if isinstance(command, m.ScanDocument):
            self._jobs.put_nowait(command)
        else:
            super().on_command(command)

    async def behave(self) -> None:
        try:
            while True:
                job = await self._jobs.get()
                answer = await self._scan(job)
                self.last_reply = reply = await self.request(answer)
                if not reply.ok:
                    log.warning("%s: the hall refused %s: %s", self.id, answer.type, reply.error)
        finally:
            self.capture.close()

    async def _scan(self, job: m.ScanDocument) -> m.Request:
        try:
            frame = await self.capture.frame()
        except DeviceUnavailable as error:
            await self.hardware(False, str(error), "camera_offline")
            return m.ScanFailed(id=new_id(), job=job.id, case_id=job.case_id,
                                reason=f"camera unavailable: {error}"[:200])
        await self.hardware(True, "", "camera_offline")
        try:
            document, content_type = await asyncio.to_thread(self._document, frame, job)
            stored = await upload(
                document, content_type=content_type, case_id=job.case_id,
                server_url=self.config.agent.server_url, token=self.config.token(self.spec) or "",
                filename=f"{job.case_id}-{job.id}.{'pdf' if job.format == 'pdf' else 'jpg'}")
        except DriverError as error:
            log.warning("%s: scan %s for case %s failed: %s", self.id, job.id, job.case_id, error)
            return m.ScanFailed(id=new_id(), job=job.id, case_id=job.case_id,
                                reason=str(error)[:200])
        return m.ScanDone(id=new_id(), job=job.id, case_id=job.case_id,
                          document_id=str(stored["id"]), pages=1)

    def _document(self, frame: Image, job: m.ScanDocument) -> tuple[bytes, str]:
        page = scan(frame, paper=job.paper, dpi=job.dpi)
        quality = self.camera_spec.jpeg_quality
        if job.format == "pdf":
            return encode_pdf([page.image], dpi=job.dpi, quality=quality), "application/pdf"
        return encode_jpeg(page.image, quality), "image/jpeg"


# ---------------------------------------------------------------- keypads


class CallTerminalDevice(AgentDeviceClient):
    """A window's call terminal whose buttons are a wireless keypad."""

    def __init__(self, config: AgentConfig, spec: AgentDevice) -> None:
        super().__init__(config, spec)
        keys = {code: action for code, action in spec.keys.items()} or None
        self.keymap = CallKeymap(spec.pause_reasons, digits=spec.digits,
                                 **({"keys": keys} if keys else {}))  # type: ignore[arg-type]
        self.last_reply: m.Reply | None = None

    async def press(self, key: int) -> None:
        action = self.keymap.press(key)
        if action is None:
            return
        try:
            request = to_request(action, request_id=new_id())
        except DriverError as error:
            log.warning("%s: %s", self.id, error)
            return
        self.last_reply = reply = await self.request(request)
        if not reply.ok:
            log.info("%s: %s refused: %s", self.id, action.name, reply.error)


class EvaluationTerminalDevice(AgentDeviceClient):
    """A rating keypad: its keys rate the ticket the hall last asked about."""

    def __init__(self, config: AgentConfig, spec: AgentDevice) -> None:
        super().__init__(config, spec)
        self.keymap = EvaluationKeymap()
        self.asked: m.EvaluationRequest | None = None
        self.last_reply: m.Reply | None = None

    def on_command(self, command: m.Command) -> None:
        if isinstance(command, m.EvaluationRequest):
            self.asked = command
        else:
            super().on_command(command)

    async def press(self, key: int) -> None:
        asked = self.asked
        if asked is None:
            log.info("%s: key %d with no rating asked for", self.id, key)
            return
        rate = self.keymap.to_rate(key, ticket_id=asked.ticket_id, request_id=new_id())
        if rate is None:
            return
        self.asked = None
        self.last_reply = reply = await self.request(rate)
        if not reply.ok:
            log.info("%s: rating refused: %s", self.id, reply.error)


KeypadDevice = CallTerminalDevice | EvaluationTerminalDevice


async def run_receiver(receiver: KeypadReceiver, devices: dict[str, KeypadDevice]) -> None:
    """Hand each key press to the terminal its keypad acts as."""
    async def open_receiver() -> Receiver:
        port = Receiver(receiver.url, baudrate=receiver.baudrate)
        await port.open()
        return port

    async def use(port: Receiver) -> None:
        async for press in port.presses():
            device_id = receiver.keypads.get(press.keypad.upper()) or receiver.keypads.get(
                press.keypad.lower())
            device = devices.get(device_id or "")
            if device is None:
                log.warning("keypad %s is not learned to any terminal of this PC", press.keypad)
                continue
            device.spawn(device.press(press.key))

    async def on_change(up: bool, why: str) -> None:
        for device_id in set(receiver.keypads.values()):
            if device := devices.get(device_id):
                await device.hardware(up, why, "keypad_receiver_offline")

    await keep_using(f"keypad receiver {receiver.url}", open_receiver, use, on_change)


# -------------------------------------------------------------------- agent

_CLASSES: dict[DeviceKind, type[AgentDeviceClient]] = {
    DeviceKind.KIOSK: PrintingDevice,
    DeviceKind.PRINTER: PrintingDevice,
    DeviceKind.CARD_READER: CardReaderDevice,
    DeviceKind.LED_STRIP: LedDevice,
    DeviceKind.ANNOUNCER: AnnouncerDevice,
    DeviceKind.CALL_TERMINAL: CallTerminalDevice,
    DeviceKind.EVALUATION_TERMINAL: EvaluationTerminalDevice,
    DeviceKind.DOCUMENT_CAMERA: DocumentCameraDevice,
}


class EdgeAgent:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.devices: dict[str, AgentDeviceClient] = {}
        for spec in config.devices:
            cls = _CLASSES.get(spec.kind)
            if cls is None:
                raise ValueError(f"the agent drives no {spec.kind} ({spec.id})")
            self.devices[spec.id] = cls(config, spec)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        keypad_devices = {
            i: d for i, d in self.devices.items()
            if isinstance(d, CallTerminalDevice | EvaluationTerminalDevice)
        }
        log.info("agent for hall %s: %d devices, %d keypad receivers", self.config.agent.hall,
                 len(self.devices), len(self.config.keypad_receivers))
        async with asyncio.TaskGroup() as group:
            for device in self.devices.values():
                group.create_task(device.run(stop), name=f"agent {device.id}")
            receivers = [
                group.create_task(run_receiver(r, keypad_devices), name=f"receiver {r.url}")
                for r in self.config.keypad_receivers
            ]
            await stop.wait()
            for task in receivers:
                task.cancel()


@contextlib.asynccontextmanager
async def running(agent: EdgeAgent) -> AsyncIterator[EdgeAgent]:
    """For tests and embedding: the agent runs while the block does."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        yield agent
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


async def run_agent(config: AgentConfig) -> int:
    """``run_hall.py agent``: until Ctrl-C or SIGTERM; each device says it is offline."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    agent = EdgeAgent(config)
    print(f"SmartHall edge agent: {len(agent.devices)} devices of hall {config.agent.hall} "
          f"on {redacted(config.agent.mqtt_url)}\n  Ctrl-C stops", flush=True)
    await agent.run(stop)
    print("SmartHall edge agent: stopped", flush=True)
    return 0
