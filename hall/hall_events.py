"""Events of the hall that are not the engine's: they travel the same log,
with the same sequence numbers, to the same subscribers (the status wall
resumes them with ``since`` like any other), but change no engine state, so
a restore skips them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from queueing.events import Event, event


@event("device.changed")
@dataclass(frozen=True, slots=True)
class DeviceChanged(Event):
    """A device came online or went offline, its health or version changed, or
    it was quarantined or approved (W2, Q14)."""

    device_id: str
    change: str
    """``online``, ``offline``, ``health_changed``, ``version_changed``,
    ``quarantined`` or ``approved``."""
    kind: str | None
    window_id: str | None
    area: str | None
    online: bool
    paper: str
    cover: str
    errors: tuple[str, ...]


@event("case.document_added")
@dataclass(frozen=True, slots=True)
class CaseDocumentAdded(Event):
    """A scanned document was attached to a case; the backend fetches it by id.

    Carries no file name: names of scans are often a citizen's name, and events
    reach every subscriber, screens included.
    """

    case_id: str
    document_id: str
    sha256: str
    size: int
    content_type: str
    pages: int | None


@event("camera.scan_requested")
@dataclass(frozen=True, slots=True)
class ScanRequested(Event):
    """A clerk asked the window's document camera to scan into a case (D7); the device
    link sends ``camera.scan`` to the cameras at the window when it is durable."""

    window_id: str
    job: str
    case_id: str
    paper: str
    dpi: int
    format: str
    cameras: tuple[str, ...]


@event("camera.scan_finished")
@dataclass(frozen=True, slots=True)
class ScanFinished(Event):
    """A camera answered a scan job: ``document_id`` when the page is on the case,
    ``reason`` when it is not; the clerk's page follows these on the stream."""

    window_id: str | None
    job: str
    case_id: str
    device_id: str
    ok: bool
    document_id: str | None
    reason: str | None


@event("appointment.booked")
@dataclass(frozen=True, slots=True)
class AppointmentBooked(Event):
    """A citizen booked a slot in the hall's own pages (Q1). Never carries the
    appointment's code, which checks it in: events reach screens too."""

    appointment_id: int
    service: str
    slot_start: datetime
    slot_end: datetime
    channel: str
    """``mobile``, ``portal`` or ``staff``."""
    citizen_ref: str | None


@event("appointment.changed")
@dataclass(frozen=True, slots=True)
class AppointmentChanged(Event):
    appointment_id: int
    service: str
    slot_start: datetime
    slot_end: datetime
    previous_start: datetime
    citizen_ref: str | None


@event("appointment.cancelled")
@dataclass(frozen=True, slots=True)
class AppointmentCancelled(Event):
    appointment_id: int
    service: str
    slot_start: datetime
    citizen_ref: str | None


@event("appointment.missed")
@dataclass(frozen=True, slots=True)
class AppointmentMissed(Event):
    """Nobody checked the appointment in by the end of its slot plus the late
    grace; imported bookings are judged alike."""

    appointment_id: int
    service: str
    slot_start: datetime
    slot_end: datetime
    citizen_ref: str | None


@event("ticket.node")
@dataclass(frozen=True, slots=True)
class TicketNode(Event):
    """A ticket's barcode was scanned at a window (D12): a time node the engine
    has no transition for (``handling``) or one that went with its transition
    (``accepted`` with ``ticket.started``, ``finished`` with ``ticket.finished``)."""

    ticket_id: str
    number: str
    node: str
    """``accepted``, ``handling`` or ``finished``."""
    window_id: str
    staff_id: str | None
    service_id: str
    by: str
    """Who scanned: the staff member's or the device's id."""


@event("alert.raised")
@dataclass(frozen=True, slots=True)
class AlertRaised(Event):
    """A ticket passed its service's time limit (D12, W2): ``waiting_too_long``
    (no window yet) or ``serving_too_long`` (at ``window_id``, served by ``staff_id``)."""

    alert_id: str
    kind: str
    ticket_id: str
    number: str
    service_id: str
    window_id: str | None
    staff_id: str | None
    since: datetime
    limit_minutes: float
    minutes: float


@event("alert.cleared")
@dataclass(frozen=True, slots=True)
class AlertCleared(Event):
    """The ticket of an ``alert.raised`` was called, finished, moved or ended."""

    alert_id: str
    kind: str
    ticket_id: str
    service_id: str
    window_id: str | None
    minutes: float


@event("evaluation.recorded")
@dataclass(frozen=True, slots=True)
class EvaluationRecorded(Event):
    """A citizen rated a service (D10), for the backend: tied to the ticket, the
    window, the staff who served and the case when the backend linked one."""

    ticket_id: str
    window_id: str
    staff_id: str | None
    case_id: str | None
    service_id: str
    rating: int
    reasons: tuple[str, ...]
    via: str
    """``device`` (an evaluation terminal or the window's device) or ``token``
    (an evaluation page with the token of ``evaluation.request``)."""


@event("signage.notices_changed")
@dataclass(frozen=True, slots=True)
class NoticesChanged(Event):
    """A manager posted or withdrew an urgent notice (D8). Devices get it as
    ``display.signage`` on the bus; pages in a browser (the hall board) have only
    the event stream, so this tells them to read ``GET /signage/notices`` again.
    ``starts_at`` and ``expires_at`` let a page set its own timer for when the
    notice shows and goes, instead of polling."""

    notice_id: str
    change: str
    """``posted`` or ``withdrawn``."""
    starts_at: datetime | None
    expires_at: datetime | None


@event("evaluation.requested")
@dataclass(frozen=True, slots=True)
class EvaluationRequested(Event):
    """A window asked the citizen to rate the service now (D10): by its call terminal
    (``terminal.evaluate``) or its virtual caller (``POST /windows/{w}/evaluation-request``).
    The evaluation terminal's page, which has only the event stream, puts its rating
    screen up for this ticket and rates as the window's device. No personal data and
    no token: the number is what the window screen shows anyway."""

    ticket_id: str
    number: str
    window_id: str
    staff_id: str | None
