"""Events of the hall that are not the engine's: they travel the same log,
with the same sequence numbers, to the same subscribers (the status wall
resumes them with ``since`` like any other), but change no engine state, so
a restore skips them."""

from __future__ import annotations

from dataclasses import dataclass

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
