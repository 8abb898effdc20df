"""Refusals of the hall's own services: a stable ``code`` for machines, a ``message`` for
people, and the HTTP ``status`` the REST API answers with (the device link answers the
code and message over MQTT)."""

from __future__ import annotations


class Refused(Exception):
    def __init__(self, code: str, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
