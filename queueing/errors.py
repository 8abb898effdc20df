"""Why the engine refuses an operation, as stable machine-readable codes."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    DAY_NOT_STARTED = "day_not_started"
    DAY_ALREADY_STARTED = "day_already_started"
    UNKNOWN_SERVICE = "unknown_service"
    UNKNOWN_WINDOW = "unknown_window"
    UNKNOWN_TICKET = "unknown_ticket"
    UNKNOWN_PAUSE_REASON = "unknown_pause_reason"
    OUTSIDE_HOURS = "outside_hours"
    NO_OPEN_WINDOW = "no_open_window"
    QUOTA_EXHAUSTED = "quota_exhausted"
    BAD_REQUEST = "bad_request"
    NOT_LOGGED_IN = "not_logged_in"
    ALREADY_LOGGED_IN = "already_logged_in"
    STAFF_ELSEWHERE = "staff_elsewhere"
    WINDOW_CLOSED = "window_closed"
    WINDOW_PAUSED = "window_paused"
    WINDOW_NOT_PAUSED = "window_not_paused"
    WINDOW_BUSY = "window_busy"
    NO_CURRENT_TICKET = "no_current_ticket"
    NOTHING_WAITING = "nothing_waiting"
    TICKET_NOT_WAITING = "ticket_not_waiting"
    TICKET_NOT_HELD = "ticket_not_held"
    TICKET_ALREADY_ENDED = "ticket_already_ended"
    NOT_SERVED_HERE = "not_served_here"
    WRONG_STATE = "wrong_state"


class Rejected(Exception):
    """An operation the engine refuses; nothing changed."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
