"""The websocket event stream: in order, resumable exactly once, filterable,
and a slow client is cut off with a reason instead of slowing the hall."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hall.http import build_app
from hall.runtime import HallRuntime
from hall.stream import TOO_SLOW, EventStream, Subscription
from queueing import Source
from tests.hall_kit import serving


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[tuple[HallRuntime, TestClient[Any, Any]]]:
    server = await serving(pool)
    async with TestClient(TestServer(build_app(server))) as client:
        yield server.runtime, client
    await server.stop()


async def receive(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    return [json.loads(await asyncio.wait_for(ws.receive_str(), 5)) for _ in range(count)]


async def test_a_client_receives_committed_events_in_order_with_their_numbers(
    hall: tuple[HallRuntime, TestClient[Any, Any]],
) -> None:
    runtime, client = hall
    async with client.ws_connect("/api/v1/events") as ws:
        stored = await runtime.execute("login", "W1", "zhang")
        stored += await runtime.execute("issue", "biz", Source.WALK_IN)
        got = await receive(ws, len(stored))
    assert [g["seq"] for g in got] == [s.seq for s in stored]
    assert [g["type"] for g in got] == [s.event.type for s in stored]
    assert {g["v"] for g in got} == {1}


async def test_a_reconnecting_client_gets_every_missed_event_exactly_once_in_order(
    hall: tuple[HallRuntime, TestClient[Any, Any]],
) -> None:
    runtime, client = hall
    await runtime.execute("login", "W1", "zhang")
    async with client.ws_connect("/api/v1/events") as ws:
        first = await runtime.execute("issue", "biz", Source.WALK_IN)
        seen = await receive(ws, len(first))
    missed = []
    for _ in range(30):
        missed += await runtime.execute("issue", "biz", Source.WALK_IN)
    async with client.ws_connect(f"/api/v1/events?since={seen[-1]['seq']}") as ws:
        later = asyncio.gather(*(runtime.execute("issue", "tax", Source.WALK_IN) for _ in range(5)))
        got = await receive(ws, len(missed) + 5)
        live = [s for batch in await later for s in batch]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.receive_str(), 0.3)
    expected = [s.seq for s in missed] + [s.seq for s in live]
    assert [g["seq"] for g in got] == expected


async def test_since_zero_replays_the_whole_history(
    hall: tuple[HallRuntime, TestClient[Any, Any]],
) -> None:
    runtime, client = hall
    total = runtime.committer.next_seq - 1
    async with client.ws_connect("/api/v1/events?since=0") as ws:
        got = await receive(ws, total)
    assert [g["seq"] for g in got] == list(range(1, total + 1))
    assert got[0]["type"] == "day.started"


async def test_a_type_filter_passes_only_those_events(
    hall: tuple[HallRuntime, TestClient[Any, Any]],
) -> None:
    runtime, client = hall
    await runtime.execute("login", "W1", "zhang")
    async with client.ws_connect("/api/v1/events?type=ticket.*,window.paused") as ws:
        await runtime.execute("issue", "biz", Source.WALK_IN)
        await runtime.execute("call_next", "W1")
        await runtime.execute("finish", "W1")
        await runtime.execute("pause", "W1", "break")
        got = await receive(ws, 5)
    assert [g["type"] for g in got] == [
        "ticket.issued", "ticket.called", "ticket.started", "ticket.finished", "window.paused",
    ]


async def test_an_area_filter_passes_only_that_areas_events(
    hall: tuple[HallRuntime, TestClient[Any, Any]],
) -> None:
    runtime, client = hall
    async with client.ws_connect("/api/v1/events?area=F2A&type=window.logged_in") as ws:
        await runtime.execute("login", "W1", "zhang")
        await runtime.execute("login", "W5A", "wang")
        got = await receive(ws, 1)
    assert got[0]["window_id"] == "W5A"


async def test_an_unknown_area_or_a_bad_since_is_refused_before_upgrading(
    hall: tuple[HallRuntime, TestClient[Any, Any]],
) -> None:
    _, client = hall
    assert (await client.get("/api/v1/events?area=nowhere")).status == 400
    assert (await client.get("/api/v1/events?since=yesterday")).status == 400


async def test_a_slow_client_is_disconnected_with_where_to_resume(pool: asyncpg.Pool) -> None:
    server = await serving(pool)
    runtime = server.runtime
    app = build_app(server)
    stream = EventStream(runtime, max_queue=5)
    app.router.add_get("/slow", stream.handle)
    await runtime.execute("login", "W1", "zhang")
    async with TestClient(TestServer(app)) as client, client.ws_connect("/slow") as ws:
        while not stream.subscriptions:
            await asyncio.sleep(0.01)
        # One group commit delivers all twenty at once: more than the client's queue holds.
        await asyncio.gather(*(runtime.execute("issue", "biz", Source.WALK_IN) for _ in range(20)))
        frames = []
        while True:
            message = await asyncio.wait_for(ws.receive(), 5)
            if message.type is not aiohttp.WSMsgType.TEXT:
                break
            frames.append(json.loads(message.data))
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, TOO_SLOW)
        assert len(frames) == 5
        assert message.extra == f"too slow; reconnect with since={frames[-1]['seq']}"
    await server.stop()


async def test_the_metrics_show_how_far_the_furthest_client_is_behind(pool: asyncpg.Pool) -> None:
    server = await serving(pool)
    behind = Subscription(frozenset(), frozenset(), (), asyncio.Queue())
    server.stream.subscriptions.add(behind)
    try:
        stored = await server.runtime.execute("login", "W1", "zhang")
        await asyncio.gather(*(server.runtime.execute("issue", "biz", Source.WALK_IN)
                               for _ in range(3)))
        text = server.metrics.render().decode()
    finally:
        server.stream.subscriptions.discard(behind)
        await server.stop()
    assert f"hall_event_stream_queued_max {len(stored) + 3}.0" in text
