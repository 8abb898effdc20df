"""Tickets and their life: where they came from and every moment they passed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple


class Source(StrEnum):
    """How the citizen took the ticket (Q2); statistics split by it (Q13)."""

    WALK_IN = "walk_in"
    ID_CARD = "id_card"
    PHONE = "phone"
    APPOINTMENT = "appointment"
    MOBILE = "mobile"
    PRIORITY = "priority"


class Status(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    SERVING = "serving"
    HELD = "held"
    FINISHED = "finished"
    ABANDONED = "abandoned"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({Status.FINISHED, Status.ABANDONED, Status.CANCELLED, Status.EXPIRED})


class TimeNode(NamedTuple):
    """One stamped moment of a ticket (取号, 叫号, 受理, 办结...); a tuple,
    since every transition of every ticket makes one."""

    kind: str
    at: datetime
    window: str | None = None
    service: str | None = None


@dataclass(slots=True)
class Ticket:
    id: str
    number: str
    prefix: str
    requested: str
    """The service or package id the citizen asked for."""
    services: tuple[str, ...]
    source: Source
    issued_at: datetime
    ordinal: int
    key: int
    citizen_ref: str | None = None
    """Opaque: the server keeps the personal data, the engine only this handle."""
    priority_group: str | None = None
    appointment_slot: datetime | None = None
    step: int = 0
    status: Status = Status.WAITING
    window: str | None = None
    """The window that called, serves or holds the ticket."""
    target_window: str | None = None
    """A named window the ticket was sent to; only that window calls it."""
    enqueued_at: datetime | None = None
    """When the ticket last joined a queue: at issue, after a skip, a transfer,
    a release or a finished package step."""
    called_at: datetime | None = None
    started_at: datetime | None = None
    skips: int = 0
    recalls: int = 0
    nodes: list[TimeNode] = field(default_factory=list)

    @property
    def service(self) -> str:
        return self.services[self.step]

    @property
    def entry(self) -> tuple[int, int, str]:
        return (self.key, self.ordinal, self.id)

    @property
    def slot_entry(self) -> tuple[int, int, str]:
        assert self.appointment_slot is not None
        return (int(self.appointment_slot.timestamp()), self.ordinal, self.id)

    def stamp(self, kind: str, at: datetime, window: str | None = None) -> None:
        self.nodes.append(TimeNode(kind, at, window, self.service))
