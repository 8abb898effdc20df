"""The hall's events in PostgreSQL, in order, each with its sequence number.

Sequence numbers are per hall and assigned by the hall's one writer before
the events are written, so they are gap-free and in commit order: a client
that has seen ``seq`` N has seen everything up to N, which is what lets a
websocket client resume with ``since=N``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from hall.hall_events import (
    AlertCleared,
    AlertRaised,
    AppointmentBooked,
    AppointmentCancelled,
    AppointmentChanged,
    AppointmentMissed,
    CaseDocumentAdded,
    DeviceChanged,
    EvaluationRecorded,
    EvaluationRequested,
    NoticesChanged,
    ScanFinished,
    ScanRequested,
    TicketNode,
)
from hall.rows import SideTable
from queueing import Event, event_from_dict, event_to_dict

EVENTS = SideTable("hall_events", (
    ("seq", "bigint"), ("day", "date"), ("at", "timestamptz"), ("type", "text"),
    ("data", "jsonb"),
))
"""The event log's columns after ``hall_id``; ``event_row`` gives a stored event's values."""

HALL_EVENT_TYPES = (
    DeviceChanged, CaseDocumentAdded, ScanRequested, ScanFinished,
    AppointmentBooked, AppointmentChanged, AppointmentCancelled, AppointmentMissed,
    TicketNode, AlertRaised, AlertCleared, EvaluationRecorded, NoticesChanged,
    EvaluationRequested,
)
"""The hall's own event types, registered with the codec by importing them
here, so every stored event can be read back wherever the store is used."""

WIRE_VERSION = 1
"""Version of the JSON an event is published in; bumped on incompatible change."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An engine event that is committed: only these leave the server."""

    seq: int
    hall_id: str
    day: date
    event: Event

    def to_wire(self) -> dict[str, Any]:
        head = {"v": WIRE_VERSION, "seq": self.seq, "hall": self.hall_id}
        return {**head, **event_to_dict(self.event)}


class EventStore:
    def __init__(self, pool: asyncpg.Pool, hall_id: str) -> None:
        self.pool = pool
        self.hall_id = hall_id

    async def last_seq(self) -> int:
        value = await self.pool.fetchval(
            "SELECT coalesce(max(seq), 0) FROM hall_events WHERE hall_id = $1", self.hall_id
        )
        return int(value)

    async def load_current_day(self) -> list[StoredEvent]:
        """The events from the last ``day.started`` on: a checkpoint and the
        day after it, which rebuild the hall (see ``DayStarted``)."""
        rows = await self.pool.fetch(
            """
            SELECT seq, day, data FROM hall_events
            WHERE hall_id = $1 AND seq >= coalesce(
                (SELECT max(seq) FROM hall_events WHERE hall_id = $1 AND type = 'day.started'), 0)
            ORDER BY seq
            """,
            self.hall_id,
        )
        return [self._from_row(row) for row in rows]

    async def read_since(self, seq: int, limit: int = 1000) -> list[StoredEvent]:
        rows = await self.pool.fetch(
            "SELECT seq, day, data FROM hall_events WHERE hall_id = $1 AND seq > $2"
            " ORDER BY seq LIMIT $3",
            self.hall_id,
            seq,
            limit,
        )
        return [self._from_row(row) for row in rows]

    def _from_row(self, row: asyncpg.Record) -> StoredEvent:
        event = event_from_dict(json.loads(row["data"]))
        return StoredEvent(row["seq"], self.hall_id, row["day"], event)


def event_row(stored: StoredEvent) -> tuple[Any, ...]:
    """Its values in the order of ``EVENTS``' columns."""
    return (stored.seq, stored.day, stored.event.at, stored.event.type,
            json.dumps(event_to_dict(stored.event), ensure_ascii=False))
