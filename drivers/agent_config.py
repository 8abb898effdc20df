"""The edge agent's configuration: which hardware this PC has and which hall device each
piece is, checked before anything is opened.

A kiosk PC's file lists its kiosk (with the ticket printer inside) and its ID card
reader; a window PC's its LED strip, its keypad receiver and the keypads learned to it.
Every problem is reported at once as ``file: key.path: problem``, as the hall's own
configuration does, so whoever installs the PC fixes the file in one go.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from devices.broker_url import BrokerAddress
from devices.topics import ID_PATTERN, DeviceKind

DeviceId = Annotated[str, Field(pattern=rf"^{ID_PATTERN}$")]


def _broker_url(value: str) -> str:
    """Checked here so that a bad URL is a line of the file's problems, not a
    traceback when the devices start."""
    BrokerAddress.parse(value)
    return value


BrokerUrl = Annotated[str, AfterValidator(_broker_url)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PrinterHardware(_Strict):
    """An ESC/POS ticket printer: ``tcp://host:9100``, a serial path, or ``usb://VID:PID``."""

    url: str
    status_seconds: float = Field(5.0, gt=0)
    """How often to ask for paper and cover (DLE EOT), so the wall sees paper low early."""


class IdCardHardware(_Strict):
    driver: Literal["idcard"] = "idcard"
    url: str
    baudrate: int = 115200
    poll_seconds: float = Field(0.3, gt=0)


class ApduStepConfig(_Strict):
    name: str
    apdu: str
    expect_sw: str = "9000"


class PcscHardware(_Strict):
    driver: Literal["pcsc"]
    reader: str | None = None
    """A part of the PC/SC reader's name; the first reader when empty."""
    script: list[ApduStepConfig] = []


class LedHardware(_Strict):
    """``protocol`` is ``text`` (lines in ``encoding``, CR LF) or ``alpha`` (the Alpha Sign
    Communications Protocol, ``address`` being the sign's two hex digits, ``00`` for all)."""

    url: str
    protocol: Literal["text", "alpha"] = "text"
    address: str = "00"
    encoding: str = "gb18030"
    baudrate: int = 9600
    lines: int = Field(2, ge=1, le=16)
    """How many lines the strip shows at once: a hall board view is cut to fit."""
    refresh_seconds: float = Field(30.0, gt=0)
    """The view is sent again this often: a strip that lost power comes back blank."""


class AnnouncerHardware(_Strict):
    engine: Literal["espeak", "clips"] = "espeak"
    clips: Path | None = None
    """The folder of recorded clips, for ``engine = "clips"``."""
    player: list[str] | None = ["aplay", "-q"]
    """The command that plays a WAV given on its standard input (ALSA's aplay; sox's
    ``["play", "-q", "-t", "wav", "-"]`` works too), or ``{file}`` in it for a temporary
    file; none to only synthesise, on a PC without speakers."""
    repeat: int = Field(1, ge=1, le=3)


class CameraHardware(_Strict):
    """A document camera: ``source`` is a device index or path (``/dev/video0``), a stream
    URL, or an image or video file (for trying the agent out)."""

    source: str | int
    width: int | None = None
    height: int | None = None
    jpeg_quality: int = Field(80, ge=30, le=100)


class KeypadReceiver(_Strict):
    """A wireless keypad receiver on a serial port; ``keypads`` maps each learned keypad's
    address (as the receiver reports it, in hex) to the hall device it acts as: a call
    terminal or an evaluation terminal listed in this file."""

    url: str
    baudrate: int = 9600
    keypads: dict[str, DeviceId]


class AgentDevice(_Strict):
    id: DeviceId
    kind: DeviceKind
    name: str = ""
    password_env: str | None = None
    """The environment variable holding this device's broker password (never the file)."""
    printer: PrinterHardware | None = None
    card_reader: Annotated[IdCardHardware | PcscHardware, Field(discriminator="driver")] | None = (
        None
    )
    led: LedHardware | None = None
    announcer: AnnouncerHardware | None = None
    camera: CameraHardware | None = None
    token_env: str | None = None
    """The environment variable holding the device's HTTP API token: a document camera
    uploads its scans with it (``[[auth.tokens]]`` of role device in the hall's file)."""
    pause_reasons: list[str] = []
    """For a call terminal on a keypad: the hall's pause reason codes; the pause key sends
    the first, or the n-th when n is typed before it (drivers.keypad.CallKeymap)."""
    keys: dict[int, str] = {}
    """For a keypad whose key codes differ from the default layout: code → action."""
    digits: dict[int, int] = {}
    """For a keypad with a number pad: code → digit."""

    @model_validator(mode="after")
    def _hardware_fits_kind(self) -> AgentDevice:
        wanted = _HARDWARE.get(self.kind, set())
        present = {name for name in _ALL_HARDWARE if getattr(self, name) is not None}
        if extra := present - wanted:
            raise ValueError(f"a {self.kind} has no {', '.join(sorted(extra))}")
        if missing := {_NEEDED[self.kind]} - present if self.kind in _NEEDED else set():
            raise ValueError(f"a {self.kind} needs its {', '.join(sorted(missing))}")
        if self.kind is DeviceKind.CALL_TERMINAL and not self.pause_reasons:
            raise ValueError("a call terminal needs the hall's pause_reasons for its pause key")
        if self.kind is not DeviceKind.CALL_TERMINAL and (self.pause_reasons or self.keys
                                                            or self.digits):
            raise ValueError("only a call terminal has pause_reasons, keys and digits")
        return self


_ALL_HARDWARE = ("printer", "card_reader", "led", "announcer", "camera")
_HARDWARE: dict[DeviceKind, set[str]] = {
    DeviceKind.KIOSK: {"printer"},
    DeviceKind.PRINTER: {"printer"},
    DeviceKind.CARD_READER: {"card_reader"},
    DeviceKind.LED_STRIP: {"led"},
    DeviceKind.ANNOUNCER: {"announcer"},
    DeviceKind.DOCUMENT_CAMERA: {"camera"},
}
_NEEDED: dict[DeviceKind, str] = {
    DeviceKind.PRINTER: "printer",
    DeviceKind.CARD_READER: "card_reader",
    DeviceKind.LED_STRIP: "led",
    DeviceKind.ANNOUNCER: "announcer",
    DeviceKind.DOCUMENT_CAMERA: "camera",
}
KEYPAD_KINDS = frozenset({DeviceKind.CALL_TERMINAL, DeviceKind.EVALUATION_TERMINAL})


class AgentSection(_Strict):
    hall: DeviceId
    hall_name: str = ""
    """Printed at the top of each ticket."""
    mqtt_url: BrokerUrl = "mqtt://127.0.0.1:1883"
    server_url: str = "http://127.0.0.1:8080"
    """The hall server's HTTP API, for what is too big for the bus (document scans)."""
    firmware: str = "smarthall-agent 1"
    config_version: str = ""


class AgentConfig(_Strict):
    agent: AgentSection
    devices: list[AgentDevice] = Field(default_factory=list, alias="device")
    keypad_receivers: list[KeypadReceiver] = Field(default_factory=list, alias="keypad_receiver")

    @model_validator(mode="after")
    def _cross_check(self) -> AgentConfig:
        problems: list[str] = []
        ids = [d.id for d in self.devices]
        if dupes := sorted({i for i in ids if ids.count(i) > 1}):
            problems.append(f"device ids listed twice: {', '.join(dupes)}")
        kinds = {d.id: d.kind for d in self.devices}
        for receiver in self.keypad_receivers:
            for address, device_id in receiver.keypads.items():
                if kinds.get(device_id) not in KEYPAD_KINDS:
                    problems.append(
                        f"keypad {address} acts as {device_id}, which is not a call or "
                        "evaluation terminal of this file")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def password(self, device: AgentDevice) -> str | None:
        return os.environ.get(device.password_env) if device.password_env else None

    def token(self, device: AgentDevice) -> str | None:
        return os.environ.get(device.token_env) if device.token_env else None


class AgentConfigError(ValueError):
    """Every problem of a configuration file, one per line as ``file: key: problem``."""


def load_agent_config(path: Path, *, mqtt_url: str | None = None) -> AgentConfig:
    """``mqtt_url`` (from the command line or ``HALL_MQTT_URL``) overrides the file's."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AgentConfigError(f"{path}: cannot read: {error.strerror or error}") from error
    except tomllib.TOMLDecodeError as error:
        raise AgentConfigError(f"{path}: not valid TOML: {error}") from error
    if mqtt_url:
        data.setdefault("agent", {})["mqtt_url"] = mqtt_url
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"]) or "(top)"
            lines.append(f"{path}: {where}: {problem['msg']}")
        raise AgentConfigError("\n".join(lines)) from None
