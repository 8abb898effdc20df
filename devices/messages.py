"""The payloads of the hall's MQTT channels, checked where they cross the wire.

Each channel of ``devices.topics`` carries one family of messages, and each
family has a ``decode_*`` function that turns the raw payload into a typed,
frozen msgspec Struct. Whatever a device sends (truncated JSON, a wrong type,
a field too many, 1 MB of noise), the decoder either returns a valid message
or raises ``MessageError`` with a stable code, so the bridge can answer the
device and carry on instead of crashing on an input nobody thought of.

``EXAMPLES`` holds one JSON example per message type (several for taking a
ticket); docs/mqtt.md shows the same examples and the tests check both, so the
documentation cannot drift from the code.

The server and the edge agent on the kiosk PCs share this module: it imports
nothing of the hall.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, TypeAlias, TypeVar

import msgspec
from msgspec import Meta, Struct, field

from devices.topics import ID_PATTERN, Channel, DeviceKind

VERSION = 1
"""The protocol version every message carries as ``v``; see "Versioning" in docs/mqtt.md."""

MAX_MESSAGE_BYTES = 16 * 1024
"""The largest payload accepted: no message of the protocol comes near it, and a
device (or an intruder) cannot make the hall parse megabytes."""


class ErrorCode(StrEnum):
    """Error codes of the protocol itself, in ``MessageError`` and in failed replies.

    Failed replies also carry the engine's refusal codes (``queueing.errors.Reason``,
    e.g. ``quota_exhausted``) and the hall's own (e.g. ``unknown_appointment``);
    docs/mqtt.md lists them.
    """

    MALFORMED_JSON = "malformed_json"
    """Not UTF-8 JSON at all."""
    INVALID_MESSAGE = "invalid_message"
    """JSON, but not a valid message: a missing or unknown field, a wrong type, a rule broken."""
    UNKNOWN_TYPE = "unknown_type"
    """A ``type`` (or a status ``state``) this version does not know."""
    TOO_LARGE = "too_large"
    """Over ``MAX_MESSAGE_BYTES``."""
    UNSUPPORTED_VERSION = "unsupported_version"
    """A ``v`` other than ``VERSION``."""
    NOT_ALLOWED = "not_allowed"
    """A request that this kind of device may not send (a kiosk calling a ticket)."""
    UNKNOWN_DEVICE = "unknown_device"
    """A device the hall's configuration does not know and no manager approved."""
    PRINTER_OFFLINE = "printer_offline"
    """The kiosk's printer is offline or out of paper, so nothing was issued: the kiosk
    tells the citizen at once instead of handing out a number nobody can hold."""
    RATE_LIMITED = "rate_limited"
    """The device sent more than the hall takes from one device (docs/mqtt.md, "Rate
    limit"): the request was not read. Asking again a moment later is safe: nothing
    was done under its id."""


class MessageError(ValueError):
    """A payload that is not a valid message.

    ``code`` is an ``ErrorCode`` value; ``message`` says what is wrong in words a
    developer can act on. ``request_id`` is the payload's ``id`` when it had a
    usable one, so that even a broken request gets a failed reply and the device
    does not wait for its timeout.
    """

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code = str(code)
        self.message = message
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"MessageError({self.code!r}, {self.message!r}, request_id={self.request_id!r})"


def _invalid(message: str) -> MessageError:
    return MessageError(ErrorCode.INVALID_MESSAGE, message)


# ----------------------------------------------------------------- field types

Id: TypeAlias = Annotated[str, Meta(pattern=rf"^{ID_PATTERN}\Z")]
"""Ids of the hall's things (services, windows, tickets, staff): the same rule as device ids."""
Key: TypeAlias = Annotated[str, Meta(min_length=8, max_length=64)]
"""An idempotency key: long enough to be unique per device (a UUID fits)."""
Text: TypeAlias = Annotated[str, Meta(max_length=200)]
"""A short text for people: a message, a reason, a name."""
Name: TypeAlias = Annotated[str, Meta(max_length=100)]
IdNumber: TypeAlias = Annotated[str, Meta(pattern=r"^[0-9A-Za-z]{6,32}\Z")]
"""A resident ID number, or the number of a permit or passport; the server checks it further."""
Phone: TypeAlias = Annotated[str, Meta(pattern=r"^[0-9]{7,15}\Z")]
"""Digits only, as the HTTP API takes them."""
Code: TypeAlias = Annotated[str, Meta(min_length=1, max_length=32)]
Secret: TypeAlias = Annotated[str, Meta(min_length=1, max_length=128)]
CaseId: TypeAlias = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")]
"""A case id of the approval backend, as the hall's document upload takes it."""


class _Versioned(Struct, frozen=True, kw_only=True):
    """``v`` is keyword-only and comes last, so subclasses keep their own fields positional."""

    v: int = VERSION


class _Typed(_Versioned, frozen=True, tag_field="type"):
    """Messages told apart by ``type``; the tag is readable as ``.type``."""

    @property
    def type(self) -> str:
        return str(self.__struct_config__.tag)


# ---------------------------------------------------------------------- status


class _Status(_Versioned, frozen=True, tag_field="state"):
    @property
    def state(self) -> str:
        return str(self.__struct_config__.tag)


class Birth(_Status, frozen=True, tag="online"):
    """Published retained on ``status`` right after connecting: who the device is."""

    kind: DeviceKind
    firmware: Name = ""
    config_version: Name = ""


class Offline(_Status, frozen=True, tag="offline"):
    """The last will, set on connect and published retained by the broker when the
    connection dies; a device that shuts down cleanly publishes it itself."""


Status: TypeAlias = Birth | Offline


# -------------------------------------------------------------------- presence


class HallOnline(_Status, frozen=True, tag="online"):
    """Published retained on ``hall/<hall_id>/$server`` once the hall server has subscribed
    to its devices' topics: from now on what a device sends is heard. ``since`` is when
    this connection began, so a new ``since`` is a new connection, one that never heard
    what was sent before it, even when no ``offline`` came in between (a broker that died
    published no will)."""

    since: Annotated[datetime, Meta(tz=True)]


class HallOffline(_Status, frozen=True, tag="offline"):
    """The hall server's last will on ``$server``; a server that stops cleanly (or a
    city process that gives the hall to another) publishes it itself, since a clean
    DISCONNECT cancels the will."""


Presence: TypeAlias = HallOnline | HallOffline


# ----------------------------------------------------------------------- state


class Health(Struct, frozen=True, kw_only=True):
    """What the status wall alarms on (Q14, W2); devices without paper leave the defaults."""

    paper: Literal["ok", "near_end", "out"] = "ok"
    cover: Literal["closed", "open"] = "closed"
    errors: Annotated[list[Text], Meta(max_length=32)] = []


class DeviceState(_Versioned, frozen=True):
    """Published retained on ``state`` whenever it changes; ``detail`` is free telemetry."""

    health: Health = field(default_factory=Health)
    detail: dict[str, Any] = {}


# -------------------------------------------------------------------- requests


class Identity(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who the citizen is, from the card reader or typed at the kiosk."""

    name: Name | None = None
    id_number: IdNumber | None = None
    phone: Phone | None = None

    def __post_init__(self) -> None:
        if self.name is None and self.id_number is None and self.phone is None:
            raise _invalid("an identity needs a name, an id_number or a phone")


class _Request(_Typed, frozen=True, forbid_unknown_fields=True):
    """A request or event on ``event``. Unknown fields are refused: a misspelt field
    must not silently turn into a different request (a walk-in ticket, say)."""

    id: Key
    sender: ClassVar[DeviceKind]
    """The kind of device this request is for; ``senders`` says who else may send it."""
    senders: ClassVar[frozenset[DeviceKind]]
    """Every kind of device that may send it; the hall answers anyone else ``not_allowed``."""
    creates: ClassVar[bool] = False
    """Whether repeating it would repeat an effect (a second ticket, a second call)."""
    hidden: ClassVar[frozenset[str]] = frozenset()
    """Fields left out of ``repr``: passwords and personal data must not reach a log."""

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={'***' if name in self.hidden and value is not None else repr(value)}"
            for name in self.__struct_fields__
            for value in (getattr(self, name),)
        )
        return f"{type(self).__name__}({shown})"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Most requests have one sender: for them ``sender`` alone is enough."""
        super().__init_subclass__(**kwargs)
        if "senders" not in cls.__dict__ and "sender" in cls.__dict__:
            cls.senders = frozenset({cls.sender})


class KioskServices(_Request, frozen=True, tag="kiosk.services"):
    """The services a kiosk offers, with how many wait and how long (Q14)."""

    sender = DeviceKind.KIOSK


class TakeTicket(_Request, frozen=True, tag="kiosk.take_ticket"):
    """A ticket for a service, or the check-in of an appointment (Q1, Q2).

    Exactly one of ``service`` and ``appointment_code``. A priority ticket needs
    the group and its password together: a kiosk is unattended, so the password
    is what lets someone past the queue. ``source`` says which way it came in.
    """

    sender = DeviceKind.KIOSK
    creates = True
    hidden = frozenset({"identity", "phone", "priority_password"})

    service: Id | None = None
    appointment_code: Code | None = None
    identity: Identity | None = None
    phone: Phone | None = None
    priority_group: Id | None = None
    priority_password: Secret | None = None

    def __post_init__(self) -> None:
        if (self.service is None) == (self.appointment_code is None):
            raise _invalid("give either a service or an appointment_code, not both or neither")
        if (self.priority_group is None) != (self.priority_password is None):
            raise _invalid("priority_group and priority_password come together")
        if self.appointment_code is not None and self.priority_group is not None:
            raise _invalid("an appointment check-in takes no priority group")

    @property
    def source(self) -> str:
        """How the ticket came in, as ``queueing.tickets.Source`` values."""
        if self.appointment_code is not None:
            return "appointment"
        if self.priority_group is not None:
            return "priority"
        if self.identity is not None and self.identity.id_number is not None:
            return "id_card"
        if self.phone is not None or (self.identity is not None and self.identity.phone):
            return "phone"
        return "walk_in"


class Login(_Request, frozen=True, tag="terminal.login"):
    sender = DeviceKind.CALL_TERMINAL
    hidden = frozenset({"password"})

    staff_id: Id
    password: Secret | None = None


class Logout(_Request, frozen=True, tag="terminal.logout"):
    sender = DeviceKind.CALL_TERMINAL


class CallNext(_Request, frozen=True, tag="terminal.call_next"):
    sender = DeviceKind.CALL_TERMINAL
    creates = True


class CallTicket(_Request, frozen=True, tag="terminal.call"):
    """Call a named ticket out of turn."""

    sender = DeviceKind.CALL_TERMINAL
    creates = True

    ticket_id: Id


class Recall(_Request, frozen=True, tag="terminal.recall"):
    """Announce the current ticket again; a retry must not announce it a third time."""

    sender = DeviceKind.CALL_TERMINAL
    creates = True


class StartService(_Request, frozen=True, tag="terminal.start"):
    sender = DeviceKind.CALL_TERMINAL


class FinishService(_Request, frozen=True, tag="terminal.finish"):
    sender = DeviceKind.CALL_TERMINAL


class Skip(_Request, frozen=True, tag="terminal.skip"):
    """The called citizen did not come (no-show)."""

    sender = DeviceKind.CALL_TERMINAL


class Hold(_Request, frozen=True, tag="terminal.hold"):
    """Park the current citizen (gone to fetch a document)."""

    sender = DeviceKind.CALL_TERMINAL


class Release(_Request, frozen=True, tag="terminal.release"):
    """Take a parked ticket back."""

    sender = DeviceKind.CALL_TERMINAL

    ticket_id: Id


class Transfer(_Request, frozen=True, tag="terminal.transfer"):
    """Send the current ticket to another service, a named window, or both."""

    sender = DeviceKind.CALL_TERMINAL

    service: Id | None = None
    window: Id | None = None

    def __post_init__(self) -> None:
        if self.service is None and self.window is None:
            raise _invalid("a transfer needs a service or a window")


class Pause(_Request, frozen=True, tag="terminal.pause"):
    """``reason`` is a pause reason code of the hall; ``message`` overrides its screen text."""

    sender = DeviceKind.CALL_TERMINAL

    reason: Id
    message: Text | None = None


class Resume(_Request, frozen=True, tag="terminal.resume"):
    sender = DeviceKind.CALL_TERMINAL


class AskEvaluation(_Request, frozen=True, tag="terminal.evaluate"):
    """Ask the window's evaluation terminal to take the citizen's rating (D10)."""

    sender = DeviceKind.CALL_TERMINAL
    creates = True


class ScanTicket(_Request, frozen=True, tag="terminal.scan"):
    """The ticket's QR code or barcode, read at the window (D12): the called ticket
    is accepted, one in service gets its handling node, the next scan finishes it.
    A barcode scanner on the window PC sends it through the window's terminal."""

    sender = DeviceKind.CALL_TERMINAL
    creates = True

    code: Annotated[str, Meta(min_length=1, max_length=64)]


class Rate(_Request, frozen=True, tag="evaluation.rate"):
    """A citizen's rating; the hall ties it to the window and staff of the terminal."""

    sender = DeviceKind.EVALUATION_TERMINAL
    creates = True

    ticket_id: Id
    rating: Annotated[int, Meta(ge=1, le=5)]
    reasons: Annotated[list[Text], Meta(max_length=10)] = []

    def __post_init__(self) -> None:
        if not 1 <= self.rating <= 5:
            raise _invalid(f"rating must be 1 to 5, not {self.rating}")
        if len(self.reasons) > 10:
            raise _invalid("at most 10 reasons")


class CardRead(_Request, frozen=True, tag="card.read"):
    """A card reader read an ID card (D6); the hall answers with what it knows of the
    holder today: open tickets, today's appointments, case progress. A reader at a
    window (staff face it) gets names and codes in full; any other reader (a
    self-service query terminal) gets them masked."""

    sender = DeviceKind.CARD_READER
    hidden = frozenset({"identity"})

    identity: Identity

    def __post_init__(self) -> None:
        if self.identity.id_number is None:
            raise _invalid("a card read carries the card's id_number")


class PrintDone(_Request, frozen=True, tag="printer.done"):
    """``job`` is the ``id`` of the ``printer.print`` command. Sent by whoever printed:
    a kiosk with its built-in printer, or a stand-alone printer."""

    sender = DeviceKind.KIOSK
    senders = frozenset({DeviceKind.KIOSK, DeviceKind.PRINTER})

    job: Key


class PrintFailed(_Request, frozen=True, tag="printer.failed"):
    sender = DeviceKind.KIOSK
    senders = frozenset({DeviceKind.KIOSK, DeviceKind.PRINTER})

    job: Key
    reason: Text


class ScanDone(_Request, frozen=True, tag="camera.scanned"):
    """A ``camera.scan`` job is uploaded (D7): ``job`` is the command's ``id``, and
    ``document_id`` the hall's id of the stored document (``POST /cases/{id}/documents``)."""

    sender = DeviceKind.DOCUMENT_CAMERA

    job: Key
    case_id: CaseId
    document_id: Annotated[str, Meta(min_length=1, max_length=64)]
    pages: Annotated[int, Meta(ge=1, le=100)] = 1


class ScanFailed(_Request, frozen=True, tag="camera.failed"):
    """A ``camera.scan`` job failed: no page under the camera, camera unplugged, the
    upload refused; ``reason`` is for the clerk who asked."""

    sender = DeviceKind.DOCUMENT_CAMERA

    job: Key
    case_id: CaseId
    reason: Text


Request: TypeAlias = (
    KioskServices
    | TakeTicket
    | Login
    | Logout
    | CallNext
    | CallTicket
    | Recall
    | StartService
    | FinishService
    | Skip
    | Hold
    | Release
    | Transfer
    | Pause
    | Resume
    | AskEvaluation
    | ScanTicket
    | Rate
    | CardRead
    | PrintDone
    | PrintFailed
    | ScanDone
    | ScanFailed
)

REQUEST_TYPES: dict[str, type[_Request]] = {
    str(cls.__struct_config__.tag): cls
    for cls in (
        KioskServices, TakeTicket, Login, Logout, CallNext, CallTicket, Recall, StartService,
        FinishService, Skip, Hold, Release, Transfer, Pause, Resume, AskEvaluation, Rate,
        CardRead, PrintDone, PrintFailed, ScanDone, ScanFailed, ScanTicket,
    )
}

CREATING: frozenset[str] = frozenset(t for t, cls in REQUEST_TYPES.items() if cls.creates)
"""Requests whose repetition would repeat an effect. The hall deduplicates every
request by ``id`` all the same: a repeated ``terminal.finish`` would change nothing
but would be answered ``no_current_ticket`` instead of the original success."""

REQUESTS_BY_KIND: dict[DeviceKind, frozenset[str]] = {
    kind: frozenset(t for t, cls in REQUEST_TYPES.items() if kind in cls.senders)
    for kind in DeviceKind
}
"""Which requests each kind of device may send; anything else is ``not_allowed``."""


# --------------------------------------------------------------------- replies


class ErrorInfo(Struct, frozen=True):
    code: str
    message: str = ""


class Reply(_Versioned, frozen=True):
    """The hall's answer to one request, on the requesting device's ``reply`` topic only.

    ``re`` is the request's ``id``. ``result`` is request-specific (docs/mqtt.md);
    devices ignore result fields they do not know.
    """

    re: str
    ok: bool
    result: dict[str, Any] | None = None
    error: ErrorInfo | None = None

    def __post_init__(self) -> None:
        if self.ok and self.error is not None:
            raise _invalid("a successful reply carries no error")
        if not self.ok and self.error is None:
            raise _invalid("a failed reply carries an error")

    @classmethod
    def success(cls, re: str, result: dict[str, Any] | None = None) -> Reply:
        return cls(re, True, result)

    @classmethod
    def failure(cls, re: str, code: str, message: str) -> Reply:
        return cls(re, False, None, ErrorInfo(str(code), message))


# -------------------------------------------------------------------- commands


class _Command(_Typed, frozen=True):
    """An order on ``cmd``: not retained, so a device that was away never runs it late."""

    id: Key
    receivers: ClassVar[frozenset[DeviceKind]]
    """The kinds of device that take this command."""


class TicketPrint(Struct, frozen=True):
    """What goes on the paper ticket (Q2): the number, the queue, where to go, what to bring."""

    number: str
    service_name: str
    people_ahead: int | None
    estimated_minutes: float | None
    direction: str
    materials: list[str]
    notice: str
    issued_at: datetime
    qr: str = ""
    """The QR code's content (the ticket id, which the window scans, D12); empty for none."""


class PrintJob(_Command, frozen=True, tag="printer.print"):
    """Print a ticket: sent to the kiosk that took it (its printer is built in) or to a
    stand-alone printer, which answer ``printer.done`` or ``printer.failed`` with this
    ``id`` as ``job``."""

    receivers = frozenset({DeviceKind.KIOSK, DeviceKind.PRINTER})

    ticket: TicketPrint


class Announce(_Command, frozen=True, tag="announcer.say"):
    """Say a call aloud (D13); ``language`` is a BCP 47 tag, ``zh`` for Mandarin."""

    receivers = frozenset({DeviceKind.ANNOUNCER})

    text: Annotated[str, Meta(min_length=1, max_length=500)]
    language: Annotated[str, Meta(min_length=2, max_length=16)] = "zh"


class EvaluationRequest(_Command, frozen=True, tag="evaluation.request"):
    """Show the evaluation screen for a ticket (D10); the terminal answers with
    ``evaluation.rate``. ``window`` is the window's id, ``window_name`` what to show."""

    receivers = frozenset({DeviceKind.EVALUATION_TERMINAL})

    ticket_id: Id
    number: str
    window: Id
    staff_name: str = ""
    window_name: str = ""
    token: str = ""
    """Lets an evaluation page rate this ticket at this window over REST
    (``POST /api/v1/tickets/{id}/evaluation``) instead of ``evaluation.rate``."""


class KioskPrintFailed(_Command, frozen=True, tag="kiosk.print_failed"):
    """The ticket a kiosk took did not print on its stand-alone printer: the printer
    went offline, reported ``printer.failed``, or did not answer in time. ``id`` is
    the kiosk's ``kiosk.take_ticket`` id (and the job's). The ticket stays valid, so
    the kiosk shows ``message`` and the number for the citizen to note."""

    receivers = frozenset({DeviceKind.KIOSK})

    ticket_id: Id
    number: str
    reason: Literal["printer_offline", "printer_failed", "timeout"]
    message: Text = ""


class ScanDocument(_Command, frozen=True, tag="camera.scan"):
    """Scan the material under a window's document camera into a case (D7): capture,
    find the page, correct perspective and skew, crop to ``paper`` at ``dpi``, compress
    to ``format`` and upload it over HTTP (images are far over the bus's 16 KiB); the
    camera answers ``camera.scanned`` or ``camera.failed`` with this ``id`` as ``job``."""

    receivers = frozenset({DeviceKind.DOCUMENT_CAMERA})

    case_id: CaseId
    paper: Literal["A4", "A3"] = "A4"
    dpi: Annotated[int, Meta(ge=75, le=600)] = 200
    format: Literal["pdf", "jpeg"] = "pdf"


Command: TypeAlias = PrintJob | Announce | EvaluationRequest | KioskPrintFailed | ScanDocument

COMMAND_TYPES: dict[str, type[_Command]] = {
    str(cls.__struct_config__.tag): cls
    for cls in (PrintJob, Announce, EvaluationRequest, KioskPrintFailed, ScanDocument)
}

COMMANDS_BY_KIND: dict[DeviceKind, frozenset[str]] = {
    kind: frozenset(t for t, cls in COMMAND_TYPES.items() if kind in cls.receivers)
    for kind in DeviceKind
}
"""Which commands each kind of device takes on its ``cmd`` topic."""


# --------------------------------------------------------------------- display


class PositionView(Struct, frozen=True):
    """One calling position on a window screen; ``state`` is a window state
    (``idle``, ``calling``, ``serving``, ``paused``, ...), ``message`` the pause text."""

    window: Id
    name: str
    staff_name: str | None
    state: str
    number: str | None
    message: str | None


class CallView(Struct, frozen=True):
    number: str
    window_name: str


class WaitingView(Struct, frozen=True):
    service: Id
    name: str
    waiting: int


class WindowDisplay(_Typed, frozen=True, tag="display.window"):
    """A window screen or a window's LED strip: one position, or two sharing a screen (Q10).

    ``seq`` grows with every change, so a screen can drop a duplicate that arrives late.
    """

    positions: Annotated[list[PositionView], Meta(min_length=1, max_length=2)]
    seq: int


class BoardDisplay(_Typed, frozen=True, tag="display.board"):
    """A hall board or hall LED strip: calls now, recent calls, queues."""

    calling: list[CallView]
    recent: list[CallView]
    waiting: list[WaitingView]
    seq: int


class SignageItemView(Struct, frozen=True):
    """One entry of a region's playlist: ``kind`` is ``notice`` (``text``), ``image`` or
    ``video`` (``url``), or a live ``queue`` or ``calling`` widget drawn from the
    device's own view (``services`` narrows a queue widget). ``seconds`` is how long
    it stays up; None for a video means to its end."""

    id: Id
    kind: str
    title: str
    text: str | None
    url: str | None
    seconds: int | None
    services: list[Id]


class SignageRegionView(Struct, frozen=True):
    """A region of the layout, in per cent of the screen: ``kind`` is ``calling``,
    ``queue``, ``clock`` (drawn by the device), ``ticker`` or ``media`` (playing
    ``items`` in turn)."""

    id: Id
    kind: str
    x: float
    y: float
    w: float
    h: float
    items: list[SignageItemView]


class NoticeView(Struct, frozen=True):
    """An urgent notice pushed to every screen (``level``: urgent, warning or info)."""

    id: str
    text: str
    level: str
    expires_at: datetime


class SignageDisplay(_Typed, frozen=True, tag="display.signage"):
    """Laid-out content for a window screen or hall board (D8), besides its live view:
    the scheduled ``layout`` with its regions (None when no schedule plays, and the
    device shows its live view alone), and the urgent ``notices`` shown over it.
    ``until`` is when the hall expects to send the next one (None: not foreseen)."""

    layout: str | None
    name: str
    regions: list[SignageRegionView]
    notices: list[NoticeView]
    schedule: str | None
    until: datetime | None
    seq: int


Display: TypeAlias = WindowDisplay | BoardDisplay | SignageDisplay

DISPLAY_TYPES: dict[str, type[_Typed]] = {
    str(cls.__struct_config__.tag): cls for cls in (WindowDisplay, BoardDisplay, SignageDisplay)
}

DISPLAYS_BY_KIND: dict[DeviceKind, frozenset[str]] = {
    DeviceKind.WINDOW_SCREEN: frozenset({"display.window", "display.signage"}),
    DeviceKind.HALL_BOARD: frozenset({"display.board", "display.signage"}),
    DeviceKind.LED_STRIP: frozenset({"display.window", "display.board"}),
}
"""Which view each kind of display shows; an LED strip shows its window's or the hall's."""


# -------------------------------------------------------------------- decoding


class _Head(Struct):
    """The fields checked before the full decode, for precise errors and the reply's ``re``."""

    v: Any = VERSION
    id: Any = None
    type: Any = None
    state: Any = None


_HEAD = msgspec.json.Decoder(_Head)
_STATUS: msgspec.json.Decoder[Status] = msgspec.json.Decoder(Status)
_PRESENCE: msgspec.json.Decoder[Presence] = msgspec.json.Decoder(Presence)
_STATE = msgspec.json.Decoder(DeviceState)
_REQUEST: msgspec.json.Decoder[Request] = msgspec.json.Decoder(Request)
_REPLY = msgspec.json.Decoder(Reply)
_COMMAND: msgspec.json.Decoder[Command] = msgspec.json.Decoder(Command)
_DISPLAY: msgspec.json.Decoder[Display] = msgspec.json.Decoder(Display)
_ENCODER = msgspec.json.Encoder()

_T = TypeVar("_T")


def _payload(raw: object, what: str) -> bytes | bytearray:
    if isinstance(raw, str):
        if len(raw) > MAX_MESSAGE_BYTES:
            raise MessageError(ErrorCode.TOO_LARGE, f"{what} is over {MAX_MESSAGE_BYTES} bytes")
        try:
            data: bytes | bytearray = raw.encode()
        except UnicodeEncodeError:
            raise MessageError(ErrorCode.MALFORMED_JSON, f"{what} is not valid UTF-8") from None
    elif isinstance(raw, bytes | bytearray):
        data = raw
    elif isinstance(raw, memoryview):
        if raw.nbytes > MAX_MESSAGE_BYTES:
            raise MessageError(ErrorCode.TOO_LARGE, f"{what} is over {MAX_MESSAGE_BYTES} bytes")
        data = raw.tobytes()
    else:
        raise MessageError(
            ErrorCode.INVALID_MESSAGE, f"{what} must be bytes or text, not {type(raw).__name__}"
        )
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError(
            ErrorCode.TOO_LARGE, f"{what} is {len(data)} bytes, over {MAX_MESSAGE_BYTES}"
        )
    return data


def _run(
    decoder: msgspec.json.Decoder[_T], data: bytes | bytearray, what: str, key: str | None
) -> _T:
    """One msgspec decode, every failure it can have turned into a ``MessageError``."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise MessageError(ErrorCode.INVALID_MESSAGE, f"{what}: {exc}", key) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        message = f"{what} is not valid UTF-8 JSON: {exc}"
        raise MessageError(ErrorCode.MALFORMED_JSON, message, key) from None
    except RecursionError:
        raise MessageError(ErrorCode.INVALID_MESSAGE, f"{what} is nested too deeply", key) from None


def _decode(
    raw: object,
    decoder: msgspec.json.Decoder[_T],
    what: str,
    tag_field: str | None = None,
    known: dict[str, Any] | frozenset[str] | None = None,
) -> _T:
    """Decode in two steps: first the head (``v``, ``id``, the tag), for a precise
    error and the ``id`` to answer with, then the whole message."""
    data = _payload(raw, what)
    head = _run(_HEAD, data, what, None)
    key = _usable_id(head.id)
    if type(head.v) is not int or head.v != VERSION:
        raise MessageError(
            ErrorCode.UNSUPPORTED_VERSION,
            f"{what} has v={head.v!r}; this hall speaks v={VERSION}",
            key,
        )
    if tag_field is not None and known is not None:
        tag = getattr(head, tag_field)
        if tag is None:
            raise MessageError(ErrorCode.INVALID_MESSAGE, f"{what} has no {tag_field!r}", key)
        if not isinstance(tag, str) or tag not in known:
            raise MessageError(
                ErrorCode.UNKNOWN_TYPE, f"{what} has an unknown {tag_field} {tag!r}", key
            )
        what = f"{what} {tag}"
    return _run(decoder, data, what, key)


_STATES = frozenset({"online", "offline"})


def decode_status(raw: object) -> Birth | Offline:
    """A ``status`` payload: a birth or a last will."""
    return _decode(raw, _STATUS, "status", "state", _STATES)


def decode_presence(raw: object) -> HallOnline | HallOffline:
    """A ``hall/<hall_id>/$server`` payload: the hall server online since a moment, or
    gone. Anyone who may publish there could send junk, so devices decode it like the
    hall decodes theirs."""
    return _decode(raw, _PRESENCE, "hall presence", "state", _STATES)


def decode_state(raw: object) -> DeviceState:
    """A ``state`` payload: health and telemetry. Unknown fields are ignored, so a
    device with newer telemetry still reports its health."""
    return _decode(raw, _STATE, "state")


def request_id_of(raw: bytes) -> str | None:
    """The ``id`` of an ``event`` payload, read without checking the rest: the hall
    answers a request it will not read (over the rate limit) with it."""
    if len(raw) > MAX_MESSAGE_BYTES:
        return None
    try:
        head = _HEAD.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    return _usable_id(head.id)


def _usable_id(value: Any) -> str | None:
    return value if isinstance(value, str) and 8 <= len(value) <= 64 else None


def decode_request(raw: object) -> Request:
    """An ``event`` payload: a request or event from a device.

    Raises ``MessageError``; its ``request_id`` is set when the payload had a
    usable ``id``, so the hall can answer even a broken request.
    """
    return _decode(raw, _REQUEST, "request", "type", REQUEST_TYPES)


def decode_reply(raw: object) -> Reply:
    """A ``reply`` payload (for the edge agent)."""
    return _decode(raw, _REPLY, "reply")


def decode_command(raw: object) -> Command:
    """A ``cmd`` payload (for the edge agent)."""
    return _decode(raw, _COMMAND, "command", "type", COMMAND_TYPES)


def decode_display(raw: object) -> Display:
    """A ``display`` payload (for screens, boards and LED strips)."""
    return _decode(raw, _DISPLAY, "display", "type", DISPLAY_TYPES)


def encode(message: Struct) -> bytes:
    """The JSON payload of any message of this module."""
    return _ENCODER.encode(message)


# -------------------------------------------------------------------- examples


class Example(NamedTuple):
    """A documented message: the channel it travels on and its JSON."""

    channel: Channel
    message: dict[str, Any]


DECODERS: dict[Channel, Callable[[object], Struct]] = {
    Channel.STATUS: decode_status,
    Channel.STATE: decode_state,
    Channel.EVENT: decode_request,
    Channel.REPLY: decode_reply,
    Channel.CMD: decode_command,
    Channel.DISPLAY: decode_display,
}
"""The decoder of each channel's payloads."""


def _ev(type_: str, id_: str, **fields: Any) -> Example:
    return Example(Channel.EVENT, {"v": VERSION, "type": type_, "id": id_, **fields})


EXAMPLES: dict[str, Example] = {
    "status.online": Example(
        Channel.STATUS,
        {
            "v": 1,
            "state": "online",
            "kind": "kiosk",
            "firmware": "kiosk-agent 2.3.1",
            "config_version": "2026-03-01.4",
        },
    ),
    "status.offline": Example(Channel.STATUS, {"v": 1, "state": "offline"}),
    "state.printer": Example(
        Channel.STATE,
        {
            "v": 1,
            "health": {"paper": "near_end", "cover": "closed", "errors": []},
            "detail": {"printed_today": 412, "head_temp_c": 41},
        },
    ),
    "state.kiosk": Example(
        Channel.STATE,
        {
            "v": 1,
            "health": {"paper": "ok", "cover": "open", "errors": ["touch screen not responding"]},
            "detail": {"uptime_s": 86400},
        },
    ),
    "kiosk.services": _ev("kiosk.services", "k01-5f0c1a9e"),
    "kiosk.take_ticket": _ev("kiosk.take_ticket", "k01-8d2e44b1", service="biz-setup"),
    "kiosk.take_ticket/id_card": _ev(
        "kiosk.take_ticket",
        "k01-0b9d7c35",
        service="re-transfer",
        identity={"name": "王小明", "id_number": "11010519491231002X"},
    ),
    "kiosk.take_ticket/phone": _ev(
        "kiosk.take_ticket", "k01-3c6e1f07", service="tax-declare", phone="13800138000"
    ),
    "kiosk.take_ticket/appointment": _ev(
        "kiosk.take_ticket", "k01-a41f9e62", appointment_code="YY0316A7K2"
    ),
    "kiosk.take_ticket/priority": _ev(
        "kiosk.take_ticket",
        "k01-e7d05b18",
        service="general-consult",
        priority_group="veterans",
        priority_password="826451",
    ),
    "terminal.login": _ev("terminal.login", "t04-2b8f6a10", staff_id="zhangwei", password="******"),
    "terminal.logout": _ev("terminal.logout", "t04-9a3c5e27"),
    "terminal.call_next": _ev("terminal.call_next", "t04-61d2f8c4"),
    "terminal.call": _ev("terminal.call", "t04-7e5b0d93", ticket_id="20260316-A013"),
    "terminal.recall": _ev("terminal.recall", "t04-c8a1e4f6"),
    "terminal.start": _ev("terminal.start", "t04-4f7d2b81"),
    "terminal.finish": _ev("terminal.finish", "t04-d3e9a057"),
    "terminal.skip": _ev("terminal.skip", "t04-15b8c6e2"),
    "terminal.hold": _ev("terminal.hold", "t04-8c2f7a4d"),
    "terminal.release": _ev("terminal.release", "t04-b06e3d19", ticket_id="20260316-A011"),
    "terminal.transfer": _ev(
        "terminal.transfer", "t04-5a9d1c38", service="seal-engraving"
    ),
    "terminal.pause": _ev(
        "terminal.pause", "t04-e2c47b90", reason="meeting", message="参加业务培训，10:30 恢复"
    ),
    "terminal.resume": _ev("terminal.resume", "t04-06f8e3a2"),
    "terminal.evaluate": _ev("terminal.evaluate", "t04-9d4b2e71"),
    "terminal.scan": _ev("terminal.scan", "t04-a7c3e518", code="20260316-A013"),
    "evaluation.rate": _ev(
        "evaluation.rate",
        "e04-3f81c6a5",
        ticket_id="20260316-A013",
        rating=5,
        reasons=["态度热情", "一次办结"],
    ),
    "card.read": _ev(
        "card.read",
        "r02-71e0b4c9",
        identity={"name": "王小明", "id_number": "11010519491231002X"},
    ),
    "printer.done": _ev("printer.done", "k01-c5a7d2e8", job="k01-8d2e44b1"),
    "printer.failed": _ev(
        "printer.failed", "k01-2e6b9f04", job="k01-8d2e44b1", reason="paper jam at the cutter"
    ),
    "camera.scanned": _ev(
        "camera.scanned", "cam-w01-4be1", job="scan-w01-77a0", case_id="JY2026031600042",
        document_id="d-5f2c81e0a9", pages=1,
    ),
    "camera.failed": _ev(
        "camera.failed", "cam-w01-4be2", job="scan-w01-77a1", case_id="JY2026031600042",
        reason="no document found under the camera",
    ),
    "reply.kiosk.services": Example(
        Channel.REPLY,
        {
            "v": 1,
            "re": "k01-5f0c1a9e",
            "ok": True,
            "result": {
                "services": [
                    {
                        "id": "biz-setup",
                        "name": "企业设立登记",
                        "category": "商事登记",
                        "waiting": 7,
                        "estimated_minutes": 35.0,
                        "open": True,
                    },
                    {
                        "id": "general-consult",
                        "name": "综合咨询",
                        "category": "综合受理",
                        "waiting": 0,
                        "estimated_minutes": 0.0,
                        "open": True,
                    },
                ]
            },
            "error": None,
        },
    ),
    "reply.kiosk.take_ticket": Example(
        Channel.REPLY,
        {
            "v": 1,
            "re": "k01-8d2e44b1",
            "ok": True,
            "result": {
                "ticket": {
                    "id": "20260316-A013",
                    "number": "A013",
                    "service": "biz-setup",
                    "service_name": "企业设立登记",
                    "people_ahead": 7,
                    "estimated_minutes": 35.0,
                    "direction": "请到一楼A区 4-6 号商事登记窗口",
                    "materials": ["全体股东身份证原件", "公司章程", "住所使用证明"],
                    "notice": "请留意叫号，过号请重新取号",
                    "issued_at": "2026-03-16T09:41:07+08:00",
                }
            },
            "error": None,
        },
    ),
    "reply.terminal.call_next": Example(
        Channel.REPLY,
        {
            "v": 1,
            "re": "t04-61d2f8c4",
            "ok": True,
            "result": {
                "window": {
                    "window": "w04",
                    "state": "calling",
                    "staff": "zhangwei",
                    "number": "A013",
                    "ticket_id": "20260316-A013",
                }
            },
            "error": None,
        },
    ),
    "reply.printer_offline": Example(
        Channel.REPLY,
        {
            "v": 1,
            "re": "k01-8d2e44b1",
            "ok": False,
            "result": None,
            "error": {"code": "printer_offline", "message": "打印纸已用完，请到其他取号机取号"},
        },
    ),
    "reply.wrong_priority_password": Example(
        Channel.REPLY,
        {
            "v": 1,
            "re": "k01-e7d05b18",
            "ok": False,
            "result": None,
            "error": {"code": "wrong_priority_password", "message": "优先取号密码不正确"},
        },
    ),
    "reply.card.read": Example(
        Channel.REPLY,
        {
            "v": 1,
            "re": "r02-71e0b4c9",
            "ok": True,
            "result": {
                "holder": {"name": "王*明", "id_number": "110105********002X"},
                "masked": True,
                "tickets": [
                    {
                        "id": "20260316-A013",
                        "number": "A013",
                        "service": "biz-setup",
                        "service_name": "企业设立登记",
                        "state": "waiting",
                        "people_ahead": 7,
                        "estimated_minutes": 35.0,
                        "window": None,
                    }
                ],
                "appointments": [
                    {
                        "code": "YY******K2",
                        "service": "tax-declare",
                        "service_name": "纳税申报",
                        "slot_start": "2026-03-16T14:00:00+08:00",
                        "slot_end": "2026-03-16T14:30:00+08:00",
                        "status": "booked",
                        "ticket_id": None,
                    }
                ],
                "cases": [
                    {
                        "case_id": "JY2026031600042",
                        "ticket_id": "20260316-A013",
                        "status": "accepted",
                        "message": "已受理，等待审核",
                        "at": "2026-03-16T10:02:11+08:00",
                    }
                ],
            },
            "error": None,
        },
    ),
    "reply.quota_exhausted": Example(
        Channel.REPLY,
        {
            "v": 1,
            "re": "k01-8d2e44b1",
            "ok": False,
            "result": None,
            "error": {"code": "quota_exhausted", "message": "今日该事项号源已发完"},
        },
    ),
    "printer.print": Example(
        Channel.CMD,
        {
            "v": 1,
            "type": "printer.print",
            "id": "k01-8d2e44b1",
            "ticket": {
                "number": "A013",
                "service_name": "企业设立登记",
                "people_ahead": 7,
                "estimated_minutes": 35.0,
                "direction": "请到一楼A区 4-6 号商事登记窗口",
                "materials": ["全体股东身份证原件", "公司章程", "住所使用证明"],
                "notice": "请留意叫号，过号请重新取号",
                "issued_at": "2026-03-16T09:41:07+08:00",
                "qr": "20260316-A013",
            },
        },
    ),
    "kiosk.print_failed": Example(
        Channel.CMD,
        {
            "v": 1,
            "type": "kiosk.print_failed",
            "id": "k03-8d2e44b1",
            "ticket_id": "20260316-A013",
            "number": "A013",
            "reason": "printer_offline",
            "message": "取号单未能打印（打印机离线），您的号码是 A013，请留意叫号",
        },
    ),
    "camera.scan": Example(
        Channel.CMD,
        {
            "v": 1,
            "type": "camera.scan",
            "id": "scan-w01-77a0",
            "case_id": "JY2026031600042",
            "paper": "A4",
            "dpi": 200,
            "format": "pdf",
        },
    ),
    "announcer.say": Example(
        Channel.CMD,
        {
            "v": 1,
            "type": "announcer.say",
            "id": "call-A013-speaker-f1",
            "text": "请A013号到4号窗口办理",
            "language": "zh",
        },
    ),
    "evaluation.request": Example(
        Channel.CMD,
        {
            "v": 1,
            "type": "evaluation.request",
            "id": "t04-9d4b2e71",
            "ticket_id": "20260316-A013",
            "number": "A013",
            "window": "w04",
            "staff_name": "张伟",
            "window_name": "4号窗口 商事登记",
            "token": "q3Zb8w1XkP0rT5nY2mVc7aLd9sFh4jGe",
        },
    ),
    "display.window": Example(
        Channel.DISPLAY,
        {
            "v": 1,
            "type": "display.window",
            "positions": [
                {
                    "window": "w12a",
                    "name": "12A号窗口 发票",
                    "staff_name": "王芳",
                    "state": "calling",
                    "number": "K021",
                    "message": None,
                },
                {
                    "window": "w12b",
                    "name": "12B号窗口 发票",
                    "staff_name": None,
                    "state": "paused",
                    "number": None,
                    "message": "午间就餐暂停服务，急办事项请到一楼A区3号窗口",
                },
            ],
            "seq": 1842,
        },
    ),
    "display.board": Example(
        Channel.DISPLAY,
        {
            "v": 1,
            "type": "display.board",
            "calling": [{"number": "A013", "window_name": "4号窗口"}],
            "recent": [
                {"number": "Z031", "window_name": "1号窗口"},
                {"number": "K020", "window_name": "12A号窗口"},
            ],
            "waiting": [
                {"service": "biz-setup", "name": "企业设立登记", "waiting": 7},
                {"service": "general-consult", "name": "综合咨询", "waiting": 0},
            ],
            "seq": 1843,
        },
    ),
    "display.signage": Example(
        Channel.DISPLAY,
        {
            "v": 1,
            "type": "display.signage",
            "layout": "rest-area",
            "name": "休息区大屏",
            "regions": [
                {
                    "id": "main",
                    "kind": "media",
                    "x": 0.0,
                    "y": 0.0,
                    "w": 70.0,
                    "h": 88.0,
                    "items": [
                        {
                            "id": "promo-yiwangtongban",
                            "kind": "video",
                            "title": "一网通办宣传片",
                            "text": None,
                            "url": "https://media.example.gov.cn/hall/yiwangtongban.mp4",
                            "seconds": None,
                            "services": [],
                        },
                        {
                            "id": "queue-f1",
                            "kind": "queue",
                            "title": "一楼排队情况",
                            "text": None,
                            "url": None,
                            "seconds": 20,
                            "services": ["biz-setup", "general-consult"],
                        },
                    ],
                },
                {"id": "calls", "kind": "calling", "x": 70.0, "y": 0.0, "w": 30.0, "h": 88.0,
                 "items": []},
                {
                    "id": "ticker",
                    "kind": "ticker",
                    "x": 0.0,
                    "y": 88.0,
                    "w": 85.0,
                    "h": 12.0,
                    "items": [
                        {
                            "id": "notice-lunch",
                            "kind": "notice",
                            "title": "午间服务",
                            "text": "午间 12:00-14:00 综合窗口不间断服务",
                            "url": None,
                            "seconds": 15,
                            "services": [],
                        }
                    ],
                },
                {"id": "clock", "kind": "clock", "x": 85.0, "y": 88.0, "w": 15.0, "h": 12.0,
                 "items": []},
            ],
            "notices": [
                {
                    "id": "n-5d1c7e2a",
                    "text": "系统升级，不动产登记业务暂停受理，预计 15:00 恢复",
                    "level": "urgent",
                    "expires_at": "2026-03-16T15:00:00+08:00",
                }
            ],
            "schedule": "workday-daytime",
            "until": "2026-03-16T12:00:00+08:00",
            "seq": 1773631200000,
        },
    ),
}
"""Documented examples, shown verbatim in docs/mqtt.md; keys are the message type,
with ``/variant`` for more of one type, and ``status.``/``state.``/``reply.`` for the
untyped channels."""

PRESENCE_EXAMPLES: dict[str, dict[str, Any]] = {
    "presence.online": {"v": 1, "state": "online", "since": "2026-03-16T08:00:02.417000+08:00"},
    "presence.offline": {"v": 1, "state": "offline"},
}
"""The hall server's presence on ``hall/<hall_id>/$server`` (not a device channel, so
not in ``EXAMPLES``), shown verbatim in docs/mqtt.md."""
