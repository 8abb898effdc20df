"""The approval backend loses the hall's event stream for 30 s while the hall
goes on taking and calling tickets, then resumes with ``since``. It must end
up with every committed event exactly once, in order, with no gap, and each
as the hall stored it.

Two backends are cut at once, the two ways a connection is lost: one closes
its websocket (a restart of the backend, a proxy dropping it), the other stops
reading (a stalled process or a network that swallows packets) and, 30 s
later, drops the socket it never read to the end and connects again. The
hall is a real server subprocess; the load is kiosks and clerks over REST.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from tests.mqtt_kit import Mosquitto
from tests.process_kit import BACKEND_TOKEN, JSON, hall_process, logged_events, server_log
from tests.test_crash_safety import (
    CLERKS,
    NEXT_STEP,
    SERVICES,
    Acknowledged,
    auth,
    check_log,
    open_hall,
    post,
    record_figures,
)

CUT = 30.0
"""Seconds the backends are away: what the issue asks for."""
BEFORE_CUT = 1.0
AFTER_CUT = 1.0
"""Seconds of load before the cut and after the backends are back."""
CATCH_UP = 10.0
"""Seconds a resumed backend may take to reach the hall's last event."""
PACE = 0.1
"""Seconds between one client's requests: some 60 events a second in all, so that the
30 s backlog spans pages of the stream's backlog reads (1,000 events each)."""
WIRE_ONLY = ("v", "seq", "hall", "citizen")
"""What the stream adds to a stored event: version, sequence, hall, identity."""


@dataclass
class Backend:
    """An approval backend following /api/v1/events and keeping every event it
    read, in the order it read them."""

    base: str
    events: list[JSON] = field(default_factory=list)
    connections: int = 0

    @property
    def last_seq(self) -> int:
        return int(self.events[-1]["seq"]) if self.events else 0

    async def connect(self, session: aiohttp.ClientSession) -> aiohttp.ClientWebSocketResponse:
        self.connections += 1
        return await session.ws_connect(
            f"{self.base}/api/v1/events?since={self.last_seq}", headers=auth(BACKEND_TOKEN)
        )

    async def read(self, ws: aiohttp.ClientWebSocketResponse, until: asyncio.Event) -> None:
        """Take what comes until ``until`` is set; the socket stays open."""
        while not until.is_set():
            try:
                message = await asyncio.wait_for(ws.receive(), 0.1)
            except TimeoutError:
                continue
            assert message.type is aiohttp.WSMsgType.TEXT, f"the stream ended: {message}"
            self.events.append(json.loads(message.data))

    async def caught_up(self, last: int) -> None:
        deadline = time.monotonic() + CATCH_UP
        while self.last_seq < last:
            assert time.monotonic() < deadline, f"at seq {self.last_seq} of {last}"
            await asyncio.sleep(0.05)


async def closes_and_comes_back(backend: Backend, cut: asyncio.Event, done: asyncio.Event
                                ) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await backend.connect(session)
        await backend.read(ws, cut)
        await ws.close()
        await asyncio.sleep(CUT)
        async with await backend.connect(session) as again:
            await backend.read(again, done)


async def stalls_and_comes_back(backend: Backend, cut: asyncio.Event, done: asyncio.Event
                                ) -> None:
    """Not reading: aiohttp stops taking from the socket once 128 KiB wait unread,
    and the kernel's buffers take the rest (a 30 s backlog fits in them, so the
    hall's writes never block here; tests/test_event_stream.py closes a client
    that falls too far behind). What was buffered but never read was not seen:
    the resume starts after the last event read."""
    async with aiohttp.ClientSession() as stalled:
        ws = await backend.connect(stalled)
        await backend.read(ws, cut)
        await asyncio.sleep(CUT)
        ws.get_extra_info("socket").shutdown(socket.SHUT_RDWR)
    async with aiohttp.ClientSession() as session, await backend.connect(session) as again:
        await backend.read(again, done)


async def take_tickets(session: aiohttp.ClientSession, base: str, token: str,
                       rng: random.Random, stop: asyncio.Event, told: Acknowledged) -> None:
    while not stop.is_set():
        status, body = await post(session, f"{base}/api/v1/tickets", token,
                                  {"service": rng.choice(SERVICES)})
        assert status == 201, body
        told.issued(body)
        await asyncio.sleep(PACE)


async def work_window(session: aiohttp.ClientSession, base: str, window: str, token: str,
                      stop: asyncio.Event, told: Acknowledged) -> None:
    while not stop.is_set():
        step = NEXT_STEP[told.windows[window]["state"]]
        status, body = await post(session, f"{base}/api/v1/windows/{window}/{step}", token)
        if status == 200:
            told.window_answered(window, step, body)
        else:
            told.refused(status, body, expected=("nothing_waiting",))
        await asyncio.sleep(PACE)


def check_stream(backend: Backend, stored: list[tuple[int, str, JSON]], name: str) -> None:
    """``stored`` is read after the backend stopped: it may hold events the
    backend was not there for any more, never fewer."""
    seqs = [event["seq"] for event in backend.events]
    assert seqs == list(range(1, len(seqs) + 1)), (
        f"the {name} backend's seqs are not 1..{len(seqs)} once each in order")
    assert len(seqs) <= len(stored), f"the {name} backend got events the hall never stored"
    for event, (seq, kind, data) in zip(backend.events, stored, strict=False):
        body = {key: value for key, value in event.items() if key not in WIRE_ONLY}
        assert body == data, f"seq {seq} ({kind}) reached the {name} backend as {event}"


async def test_a_backend_cut_off_for_30_s_resumes_with_every_event_once_in_order(
    tmp_path: Path, db_url: str, pool: asyncpg.Pool, mosquitto: Mosquitto,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    told = Acknowledged()
    async with hall_process(tmp_path, db_url, mosquitto, monkeypatch) as hall, \
            aiohttp.ClientSession() as session:
        closing, stalling = Backend(hall.base), Backend(hall.base)
        tokens = await open_hall(session, hall.base, told)
        cut, done, stop = asyncio.Event(), asyncio.Event(), asyncio.Event()
        backends = asyncio.gather(closes_and_comes_back(closing, cut, done),
                                  stalls_and_comes_back(stalling, cut, done))
        rng = random.Random(20261201)
        load = asyncio.gather(
            *(take_tickets(session, hall.base, tokens[w], random.Random(rng.random()), stop, told)
              for w in ("w04", "w09")),
            *(work_window(session, hall.base, w, tokens[w], stop, told) for w in CLERKS),
        )
        await asyncio.sleep(BEFORE_CUT)
        cut.set()
        cut_at = (closing.last_seq, stalling.last_seq)
        await asyncio.sleep(CUT + AFTER_CUT)
        stop.set()
        await load
        committed = len(await logged_events(pool))
        await closing.caught_up(committed)
        await stalling.caught_up(committed)
        done.set()
        await backends
        stored = await logged_events(pool)
        assert not told.unexpected, f"unexpected answers under load: {told.unexpected[:5]}"
        too_slow = server_log(hall).count("event client disconnected: too slow")

    missed = (committed - cut_at[0], committed - cut_at[1])
    assert min(missed) > 1000, f"only {missed} events during the cut: one backlog page at most"
    assert (closing.connections, stalling.connections) == (2, 2)
    check_stream(closing, stored, "closing")
    check_stream(stalling, stored, "stalling")
    await check_log(pool, told)
    record_figures("backend_cut_30_s", {
        "cut_s": CUT, "events": committed, "missed_by_closing": missed[0],
        "missed_by_stalling": missed[1], "tickets": len(told.numbers),
        "window_transitions": len(told.transitions), "closed_as_too_slow": too_slow,
    })
