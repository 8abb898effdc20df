"""A reference approval backend: what a real one does with the hall's API.

It pushes its catalog and bookings, follows the hall's event stream with its
own token (resuming with ``since`` after any disconnect, and checking that
sequence numbers arrive once and in order), pre-fills an application form
from the clear identity the hall sends it, and reports case progress.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient


@dataclass
class ApplicationForm:
    """The backend's form for a case, pre-filled from the ticket (Q5)."""

    ticket_id: str
    service: str
    applicant_name: str | None
    applicant_id_number: str | None
    applicant_phone: str | None


@dataclass
class ReferenceBackend:
    client: TestClient[Any, Any]
    token: str
    last_seq: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    forms: dict[str, ApplicationForm] = field(default_factory=dict)
    _follower: asyncio.Task[None] | None = None
    _socket: aiohttp.ClientWebSocketResponse | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def push_catalog(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        response = await self.client.put(
            "/api/v1/backend/catalog", json={"items": items}, headers=self.headers
        )
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result

    async def import_appointments(self, appointments: list[dict[str, Any]]) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/backend/appointments", json={"appointments": appointments},
            headers=self.headers,
        )
        assert response.status == 200, await response.text()
        result: dict[str, Any] = await response.json()
        return result

    async def report(self, case_id: str, status: str, ticket_id: str, message: str = "") -> None:
        response = await self.client.post(
            f"/api/v1/backend/cases/{case_id}/progress",
            json={"ticket_id": ticket_id, "status": status, "message": message},
            headers=self.headers,
        )
        assert response.status == 201, await response.text()

    def follow(self) -> None:
        """Follow the event stream from where it left off, until told to stop."""
        self._follower = asyncio.create_task(self._follow())

    async def cut(self) -> None:
        """Drop the connection as a network fault would; following resumes."""
        if self._socket is not None:
            await self._socket.close()

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> dict[str, Any]:
        async def found() -> dict[str, Any]:
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                await asyncio.sleep(0.02)

        return await asyncio.wait_for(found(), timeout)

    async def _follow(self) -> None:
        while True:
            url = f"/api/v1/events?since={self.last_seq}"
            async with self.client.ws_connect(url, headers=self.headers) as socket:
                self._socket = socket
                async for message in socket:
                    if message.type is aiohttp.WSMsgType.TEXT:
                        self._take(json.loads(message.data))

    def _take(self, event: dict[str, Any]) -> None:
        expected = self.last_seq + 1
        assert event["seq"] == expected, f"expected seq {expected}, got {event['seq']}"
        self.last_seq = event["seq"]
        self.events.append(event)
        citizen = event.get("citizen")
        if event["type"] == "ticket.issued" and citizen:
            self.forms[event["ticket_id"]] = ApplicationForm(
                event["ticket_id"], event["services"][0], citizen["name"],
                citizen["id_number"], citizen["phone"],
            )
