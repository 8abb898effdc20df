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
