"""Statistics (Q13): facts from a scripted day, rollups at the rollover and on
rebuild, reports by every dimension, CSV, roles and bad parameters, over a real
hall server and a real database."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import asyncpg
import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from hall.auth import hash_password, token_sha256
from hall.config import AuthConfig, StaffEntry, TokenEntry
from hall.http import build_app
from hall.server import HallServer
from hall.stats_routes import BOM, CSV_HEADER, StatsOut
from hall.stats_tables import BUCKETS, bucket_of, p90_seconds
from queueing import Source
from tests.engine_kit import OPENING
from tests.hall_kit import CONFIG, ManualClock, serving

PASSWORD = "stats-pass-1"
KIOSK = "stats-kiosk-token"
AUTH = AuthConfig(
    tokens=(TokenEntry("kiosk-1", "device", token_sha256(KIOSK)),),
    staff=(
        StaffEntry("zhang", "张伟", "staff", hash_password(PASSWORD)),
        StaffEntry("li", "李娜", "staff", hash_password(PASSWORD)),
        StaffEntry("boss", "李主任", "manager", hash_password(PASSWORD)),
        StaffEntry("root", "管理员", "admin", hash_password(PASSWORD)),
    ),
)
HALL = replace(CONFIG, auth=AUTH)
DAY = OPENING.date()
NEXT = DAY + timedelta(days=1)
Client = TestClient[Any, Any]


def at(hour: int, minute: int, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=OPENING.tzinfo)


class Script:
    """Drives the hall on its manual clock, one operation at a given minute."""

    def __init__(self, server: HallServer, clock: ManualClock) -> None:
        self.server = server
        self.clock = clock

    async def do(self, when: datetime, operation: str, *args: Any, **kwargs: Any) -> Any:
        self.clock.moment = when
        return await self.server.runtime.execute(operation, *args, **kwargs)

    async def issue(self, when: datetime, service: str, source: Source) -> str:
        stored = await self.do(when, "issue", service, source)
        ticket_id: str = stored[0].event.ticket_id
        return ticket_id

    async def rate(self, ticket_id: str, window: str, staff: str, rating: int) -> None:
        await self.server.runtime.device_replies.rate(
            ticket_id, window, staff, rating, ["态度好"], f"eval-{window}", self.clock.moment)

    async def roll_over(self, day: date) -> None:
        self.clock.moment = at(3, 5, day)
        await self.server.runtime.tick()
        await self.server.stats.settled()


async def scripted_day(script: Script) -> dict[str, str]:
    """Five tickets with every ending: served, no-show, transferred and served,
    cancelled, and one left waiting that expires at the rollover."""
    await script.do(at(8, 55), "login", "W1", "zhang")
    await script.do(at(8, 55), "login", "W2", "li")
    await script.do(at(8, 55), "login", "W3", "wang")
    await script.do(at(8, 55), "login", "W5A", "zhao")
    t1 = await script.issue(at(9, 0), "biz", Source.WALK_IN)
    t2 = await script.issue(at(9, 1), "biz", Source.ID_CARD)
    t3 = await script.issue(at(9, 2), "tax", Source.PHONE)
    t4 = await script.issue(at(9, 3), "biz", Source.MOBILE)
    await script.do(at(9, 4), "call_ticket", "W3", t3)          # waited 120 s
    await script.do(at(9, 4), "cancel", t4)
    await script.do(at(9, 5), "call_ticket", "W1", t1)          # waited 300 s
    await script.do(at(9, 5), "start", "W3")
    await script.do(at(9, 6), "start", "W1")
    await script.do(at(9, 8), "transfer", "W3", to_service="biz")   # 180 s served at W3
    await script.do(at(9, 10), "call_ticket", "W2", t2)         # waited 540 s
    await script.do(at(9, 12), "skip", "W2")
    await script.do(at(9, 16), "finish", "W1")                  # 600 s served
    await script.rate(t1, "W1", "zhang", 5)
    await script.do(at(9, 20), "call_ticket", "W1", t3)
    await script.do(at(9, 20), "call_ticket", "W2", t2)
    await script.do(at(9, 22), "skip", "W2")                    # second no-show: abandoned
    await script.do(at(9, 30), "finish", "W1")                  # 600 s from the call
    await script.rate(t3, "W1", "zhang", 2)
    t5 = await script.issue(at(10, 15), "fund", Source.WALK_IN)
    return {"t1": t1, "t2": t2, "t3": t3, "t4": t4, "t5": t5}


@pytest.fixture
async def hall(pool: asyncpg.Pool) -> AsyncIterator[tuple[Script, Client]]:
    clock = ManualClock(at(8, 50))
    server = await serving(pool, clock, HALL)
    async with TestClient(TestServer(build_app(server))) as client:
        yield Script(server, clock), client
    await server.stop()


async def session(client: Client, staff_id: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/auth/login", json={"staff_id": staff_id, "password": PASSWORD})
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['token']}"}


async def stats(client: Client, headers: dict[str, str], **params: str) -> Any:
    response = await client.get("/api/v1/stats", params=params, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


def by_key(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in body["rows"]}


async def rows_of(pool: asyncpg.Pool, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await pool.fetch(sql)]


# ---------------------------------------------------------------- facts and rollups


async def test_a_finished_day_has_one_fact_per_ticket(
    hall: tuple[Script, Client], pool: asyncpg.Pool
) -> None:
    script, _ = hall
    ids = await scripted_day(script)
    await script.roll_over(NEXT)
    rows = await pool.fetch(
        "SELECT ticket_id, hour, source, service_id, area_id, window_id, staff_id, outcome,"
        " wait_s, service_s, skips, transfers, rating FROM ticket_facts ORDER BY ticket_id")
    facts = {row["ticket_id"]: tuple(row)[1:] for row in rows}
    assert facts == {
        ids["t1"]: (9, "walk_in", "biz", "F1A", "W1", "zhang", "finished", 300, 600, 0, 0, 5),
        ids["t2"]: (9, "id_card", "biz", "F1A", "W2", "li", "abandoned", 540, None, 2, 0, None),
        ids["t3"]: (9, "phone", "tax", "F1A", "W1", "zhang", "finished", 120, 780, 0, 1, 2),
        ids["t4"]: (9, "mobile", "biz", "", "", "", "cancelled", None, None, 0, 0, None),
        ids["t5"]: (10, "walk_in", "fund", "", "", "", "expired", None, None, 0, 0, None),
    }


async def test_the_rollover_rolls_the_day_up_with_exact_means_and_p90_buckets(
    hall: tuple[Script, Client],
) -> None:
    script, client = hall
    await scripted_day(script)
    await script.roll_over(NEXT)
    body = await stats(client, await session(client, "boss"), **{"from": str(DAY)})
    assert body["live_day"] is None and body["missing_days"] == []
    (row,) = body["rows"]
    assert row == {
        "period": str(DAY), "key": "", "name": "测试大厅", "tickets": 5, "served": 2,
        "no_shows": 1, "skipped": 1, "transfers": 1, "cancelled": 1, "expired": 1,
        "called": 3, "wait_mean_s": 320.0, "wait_p90_s": 600.0, "service_mean_s": 690.0,
        "service_p90_s": 840.0, "ratings": 2, "rating_mean": 3.5, "low_rating_share": 0.5,
    }


async def test_a_rebuild_from_the_log_gives_identical_facts_and_rollups(
    hall: tuple[Script, Client], pool: asyncpg.Pool
) -> None:
    script, client = hall
    await scripted_day(script)
    await script.roll_over(NEXT)
    facts_sql = "SELECT * FROM ticket_facts ORDER BY ticket_id"
    rollups_sql = "SELECT * FROM daily_rollups ORDER BY dim, day, key"
    months_sql = "SELECT * FROM monthly_rollups ORDER BY dim, month, key"
    before = (await rows_of(pool, facts_sql), await rows_of(pool, rollups_sql),
              await rows_of(pool, months_sql))
    await pool.execute("DELETE FROM daily_rollups")
    await pool.execute("DELETE FROM monthly_rollups")
    await pool.execute("UPDATE ticket_facts SET wait_s = 1")
    response = await client.post("/api/v1/stats/rebuild", json={"from": str(DAY), "to": str(DAY)},
                                 headers=await session(client, "boss"))
    assert response.status == 200, await response.text()
    assert (await response.json())["days"] == [{"day": str(DAY), "tickets": 5}]
    assert (await rows_of(pool, facts_sql), await rows_of(pool, rollups_sql),
            await rows_of(pool, months_sql)) == before


async def test_a_rebuild_is_audited(hall: tuple[Script, Client], pool: asyncpg.Pool) -> None:
    script, client = hall
    await scripted_day(script)
    await script.roll_over(NEXT)
    await client.post("/api/v1/stats/rebuild", json={"from": str(DAY), "to": str(DAY)},
                      headers=await session(client, "boss"))
    audit = await pool.fetchrow("SELECT actor, target, detail FROM audit_log"
                                " WHERE action = 'stats.rebuild'")
    assert (audit["actor"], audit["target"]) == ("boss", f"{DAY}..{DAY}")


async def test_today_is_not_rebuilt(hall: tuple[Script, Client]) -> None:
    _, client = hall
    response = await client.post("/api/v1/stats/rebuild", json={"from": str(DAY), "to": str(DAY)},
                                 headers=await session(client, "boss"))
    assert response.status == 422
    assert (await response.json())["code"] == "day_not_over"


async def test_a_day_missed_while_the_hall_was_down_is_rolled_up_at_start(
    pool: asyncpg.Pool,
) -> None:
    clock = ManualClock(at(8, 50))
    server = await serving(pool, clock, HALL)
    await scripted_day(Script(server, clock))
    await server.stop()
    clock.moment = at(9, 0, NEXT)
    again = await serving(pool, clock, HALL)
    try:
        await again.stats.settled()
        rolled = await pool.fetch("SELECT day, tickets FROM stats_days")
        assert [tuple(r) for r in rolled] == [(DAY, 5)]
    finally:
        await again.stop()


async def test_a_day_not_rolled_up_yet_is_reported_missing(
    hall: tuple[Script, Client], pool: asyncpg.Pool
) -> None:
    script, client = hall
    await scripted_day(script)
    await script.roll_over(NEXT)
    await pool.execute("DELETE FROM stats_days")
    body = await stats(client, await session(client, "boss"), **{"from": str(DAY)})
    assert body["missing_days"] == [str(DAY)]


# ---------------------------------------------------------------- reports


async def test_today_is_reported_live_before_the_rollover(hall: tuple[Script, Client]) -> None:
    script, client = hall
    await scripted_day(script)
    body = await stats(client, await session(client, "boss"))
    assert body["live_day"] == str(DAY)
    (row,) = body["rows"]
    assert (row["tickets"], row["served"], row["wait_mean_s"], row["rating_mean"]) == (
        5, 2, 320.0, 3.5)


async def test_live_figures_match_what_the_rollover_writes(hall: tuple[Script, Client]) -> None:
    script, client = hall
    await scripted_day(script)
    headers = await session(client, "boss")
    live = await stats(client, headers, group="staff")
    await script.roll_over(NEXT)
    rolled = await stats(client, headers, group="staff", **{"from": str(DAY)})
    expired = {"": 1}
    for row in live["rows"]:
        row["expired"] = expired.get(row["key"], 0)
    assert live["rows"] == rolled["rows"]


@pytest.mark.parametrize(("group", "expected"), [
    ("service", {"biz": 3, "tax": 1, "fund": 1}),
    ("window", {"W1": 2, "W2": 1, "": 2}),
    ("staff", {"zhang": 2, "li": 1, "": 2}),
    ("area", {"F1A": 3, "": 2}),
    ("source", {"walk_in": 2, "id_card": 1, "phone": 1, "mobile": 1}),
])
async def test_a_report_groups_by_each_dimension(
    hall: tuple[Script, Client], group: str, expected: dict[str, int]
) -> None:
    script, client = hall
    await scripted_day(script)
    await script.roll_over(NEXT)
    body = await stats(client, await session(client, "boss"), group=group, **{"from": str(DAY)})
    assert {key: row["tickets"] for key, row in by_key(body).items()} == expected


async def test_a_window_row_has_its_own_waits_and_names(hall: tuple[Script, Client]) -> None:
    script, client = hall
    await scripted_day(script)
    await script.roll_over(NEXT)
    body = await stats(client, await session(client, "boss"), group="window",
                       **{"from": str(DAY)})
    w1 = by_key(body)["W1"]
    assert (w1["name"], w1["wait_mean_s"], w1["wait_p90_s"], w1["service_mean_s"]) == (
        "1号窗口", 210.0, 360.0, 690.0)
    assert by_key(body)[""]["name"] == "（未叫号）"


async def test_staff_rows_carry_the_staff_names(hall: tuple[Script, Client]) -> None:
    script, client = hall
    await scripted_day(script)
    await script.roll_over(NEXT)
    body = await stats(client, await session(client, "boss"), group="staff",
                       **{"from": str(DAY)})
    assert by_key(body)["zhang"]["name"] == "张伟"


async def test_an_hourly_report_reads_the_facts_by_hour_of_issue(
    hall: tuple[Script, Client],
) -> None:
    script, client = hall
    await scripted_day(script)
    await script.roll_over(NEXT)
    body = await stats(client, await session(client, "boss"), by="hour", **{"from": str(DAY)})
    hours = {row["period"]: (row["tickets"], row["wait_p90_s"]) for row in body["rows"]}
    assert hours == {f"{DAY} 09:00": (4, 600.0), f"{DAY} 10:00": (1, None)}


async def test_a_month_adds_up_its_days_and_today(hall: tuple[Script, Client]) -> None:
    script, client = hall
    await scripted_day(script)
    await script.roll_over(NEXT)
    await script.do(at(9, 0, NEXT), "login", "W1", "zhang")
    t6 = await script.issue(at(9, 0, NEXT), "biz", Source.WALK_IN)
    await script.do(at(9, 50, NEXT), "call_ticket", "W1", t6)   # waited 3000 s
    body = await stats(client, await session(client, "boss"), by="month",
                       **{"from": "2026-11-01", "to": "2026-11-30"})
    (row,) = body["rows"]
    assert body["live_day"] == str(NEXT)
    assert (row["period"], row["tickets"], row["called"], row["wait_mean_s"]) == (
        "2026-11", 6, 4, 990.0)
    assert row["wait_p90_s"] == 3120.0


async def test_a_month_read_whole_equals_the_month_read_from_its_days(
    hall: tuple[Script, Client],
) -> None:
    script, client = hall
    await scripted_day(script)
    await script.roll_over(NEXT)
    headers = await session(client, "boss")
    whole = await stats(client, headers, by="month", group="window",
                        **{"from": "2026-11-01", "to": "2026-11-30"})
    part = await stats(client, headers, by="month", group="window",
                       **{"from": str(DAY), "to": str(DAY)})
    assert whole["rows"] == part["rows"]
    assert {row["key"] for row in part["rows"]} == {"W1", "W2", ""}


# ---------------------------------------------------------------- CSV


async def test_a_csv_download_has_the_bom_a_header_and_the_rows(
    hall: tuple[Script, Client],
) -> None:
    script, client = hall
    await scripted_day(script)
    await script.roll_over(NEXT)
    headers = await session(client, "boss")
    response = await client.get("/api/v1/stats", params={"from": str(DAY), "group": "service",
                                                         "format": "csv"}, headers=headers)
    raw = await response.read()
    assert response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    assert raw.startswith(BOM.encode("utf-8"))
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0] == list(CSV_HEADER.values())
    assert {(r[1], r[2], r[3]) for r in table[1:]} == {
        ("biz", "企业设立登记", "3"), ("tax", "发票申领", "1"), ("fund", "公积金提取", "1")}


async def test_accept_text_csv_chooses_the_csv(hall: tuple[Script, Client]) -> None:
    _, client = hall
    headers = {**await session(client, "boss"), "Accept": "text/csv"}
    response = await client.get("/api/v1/stats", headers=headers)
    assert response.content_type == "text/csv"
    assert (await response.read()).startswith(BOM.encode("utf-8"))


async def test_the_json_fits_its_declared_model(hall: tuple[Script, Client]) -> None:
    script, client = hall
    await scripted_day(script)
    body = await stats(client, await session(client, "boss"), group="area")
    assert StatsOut.model_validate(body).rows[0].period == str(DAY)


# ---------------------------------------------------------------- access and input


async def test_staff_may_not_read_statistics(hall: tuple[Script, Client]) -> None:
    _, client = hall
    response = await client.get("/api/v1/stats", headers=await session(client, "zhang"))
    assert response.status == 403


async def test_devices_may_not_read_statistics(hall: tuple[Script, Client]) -> None:
    _, client = hall
    response = await client.get("/api/v1/stats", headers={"Authorization": f"Bearer {KIOSK}"})
    assert response.status == 403


async def test_statistics_need_credentials(hall: tuple[Script, Client]) -> None:
    _, client = hall
    response = await client.get("/api/v1/stats")
    assert response.status == 401


async def test_admins_read_statistics(hall: tuple[Script, Client]) -> None:
    _, client = hall
    response = await client.get("/api/v1/stats", headers=await session(client, "root"))
    assert response.status == 200


async def test_staff_may_not_rebuild(hall: tuple[Script, Client]) -> None:
    _, client = hall
    response = await client.post("/api/v1/stats/rebuild", json={"from": "2026-11-01",
                                                                "to": "2026-11-02"},
                                 headers=await session(client, "zhang"))
    assert response.status == 403


@pytest.mark.parametrize(("params", "code"), [
    ({"by": "week"}, "validation_failed"),
    ({"group": "floor"}, "validation_failed"),
    ({"from": "2026-13-01"}, "validation_failed"),
    ({"format": "xlsx"}, "validation_failed"),
    ({"colour": "red"}, "validation_failed"),
    ({"from": "2026-11-24", "to": "2026-11-01"}, "invalid_range"),
    ({"from": "2026-01-01", "to": "2026-03-01", "by": "hour"}, "range_too_long"),
    ({"from": "2020-01-01", "to": "2026-03-01"}, "range_too_long"),
])
async def test_bad_parameters_are_a_422_problem(
    hall: tuple[Script, Client], params: dict[str, str], code: str
) -> None:
    _, client = hall
    response = await client.get("/api/v1/stats", params=params,
                                headers=await session(client, "boss"))
    assert response.status == 422
    assert response.content_type == "application/problem+json"
    assert (await response.json())["code"] == code


async def test_a_rebuild_longer_than_a_month_is_refused(hall: tuple[Script, Client]) -> None:
    _, client = hall
    response = await client.post("/api/v1/stats/rebuild", json={"from": "2026-01-01",
                                                                "to": "2026-03-01"},
                                 headers=await session(client, "boss"))
    assert response.status == 422
    assert (await response.json())["code"] == "range_too_long"


# ---------------------------------------------------------------- buckets


def test_p90_is_the_upper_edge_of_the_nearest_rank_bucket() -> None:
    seconds = np.array([30] * 9 + [400])          # 9 of 10 under a minute: p90 is bucket 0
    hist = np.bincount(bucket_of(seconds), minlength=BUCKETS).reshape(1, BUCKETS)
    assert p90_seconds(hist).tolist() == [60.0]


def test_p90_moves_to_the_next_bucket_past_ninety_percent() -> None:
    seconds = np.array([30] * 8 + [400, 400])
    hist = np.bincount(bucket_of(seconds), minlength=BUCKETS).reshape(1, BUCKETS)
    assert p90_seconds(hist).tolist() == [420.0]


def test_waits_past_the_last_edge_report_the_last_edge() -> None:
    hist = np.bincount(bucket_of([40_000]), minlength=BUCKETS).reshape(1, BUCKETS)
    assert p90_seconds(hist).tolist() == [28800.0]
