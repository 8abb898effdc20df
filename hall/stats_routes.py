"""Statistics over REST (Q13): reports as JSON or as a CSV download, and the
rebuild of a range of days from the event log. For managers and admins."""

from __future__ import annotations

import csv
import io
import logging
from datetime import date
from typing import Any, Literal

import msgspec
from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    model_validator,
)

from hall.api.problems import Problem
from hall.auth import Role, require
from hall.routes import api, server_of
from hall.stats_report import FIELDS, Report
from hall.stats_tables import BUCKET_EDGES

log = logging.getLogger(__name__)

MANAGERS = ("manager", "admin")
MAX_DAYS = 1096
"""Three years: the longest range one report covers."""
MAX_HOUR_DAYS = 31
"""Hourly reports read raw facts: a month at most."""
MAX_REBUILD_DAYS = 31

CSV_HEADER = {
    "period": "时段", "key": "分组", "name": "名称", "tickets": "取号数", "served": "办结数",
    "no_shows": "弃号数", "skipped": "过号数", "transfers": "转移次数", "cancelled": "取消数",
    "expired": "过期数", "called": "叫号数", "wait_mean_s": "平均等候(秒)",
    "wait_p90_s": "等候P90(秒)", "service_mean_s": "平均办理(秒)",
    "service_p90_s": "办理P90(秒)", "ratings": "评价数", "rating_mean": "平均评分",
    "low_rating_share": "差评率(1-2星)",
}
"""The CSV's header row, for the managers who open it in Excel; docs/statistics.md
maps each to the JSON field."""
BOM = "\ufeff"


class StatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_: date | None = Field(None, alias="from", description="First day (default: today)")
    to: date | None = Field(None, description="Last day, inclusive (default: the first)")
    by: Literal["day", "hour", "month"] = "day"
    group: Literal["hall", "service", "window", "staff", "area", "source"] = Field(
        "hall", description="What each row is: the whole hall, or one of a dimension")
    format: Literal["json", "csv"] | None = Field(
        None, description="csv for a download (also chosen by Accept: text/csv)")

    @model_validator(mode="wrap")
    @classmethod
    def _logged(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(data)
        except ValidationError as error:
            log.info("statistics query refused: %s", error.errors(include_url=False))
            raise


class StatsRow(BaseModel):
    period: str = Field(description="2026-11-24, 2026-11 or 2026-11-24 09:00")
    key: str = Field(description='The group\'s id; "" for the whole hall or no window')
    name: str
    tickets: int
    served: int
    no_shows: int = Field(description="Abandoned after the allowed skips")
    skipped: int = Field(description="Tickets skipped at least once")
    transfers: int
    cancelled: int
    expired: int
    called: int
    wait_mean_s: float | None
    wait_p90_s: float | None = Field(description="Upper edge of the p90's bucket")
    service_mean_s: float | None
    service_p90_s: float | None
    ratings: int
    rating_mean: float | None
    low_rating_share: float | None = Field(description="Share of 1- and 2-star ratings")


class StatsOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: date = Field(alias="from")
    to: date
    by: str
    group: str
    live_day: date | None = Field(description="Today, whose figures are live")
    missing_days: list[date] = Field(description="Days of the range not rolled up yet")
    p90_bucket_edges_s: list[int]
    rows: list[StatsRow]


class RebuildIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_: date = Field(alias="from")
    to: date


class RebuiltDay(BaseModel):
    day: date
    tickets: int


class RebuildOut(BaseModel):
    days: list[RebuiltDay]


def _refuse(code: str, detail: str) -> Problem:
    log.info("statistics request refused: %s: %s", code, detail)
    return Problem(422, code, "Invalid statistics range", detail)


def _today(request: web.Request) -> date:
    server = server_of(request)
    return server.stats.today or server.runtime.clock.now().date()


def _range(query: StatsQuery, today: date) -> tuple[date, date]:
    first = query.from_ or (query.to if query.to is not None else today)
    last = query.to or first
    if last < first:
        raise _refuse("invalid_range", f"to ({last}) is before from ({first})")
    span = (last - first).days + 1
    limit = MAX_HOUR_DAYS if query.by == "hour" else MAX_DAYS
    if span > limit:
        raise _refuse("range_too_long",
                      f"{span} days; by={query.by} covers at most {limit} days")
    return first, last


def _wants_csv(request: web.Request, query: StatsQuery) -> bool:
    if query.format is not None:
        return query.format == "csv"
    return "text/csv" in request.headers.get("Accept", "")


@api.get("/stats", query=StatsQuery, response=StatsOut, roles=MANAGERS, tags=("statistics",),
         summary="Tickets, waits, service times, no-shows, transfers and ratings (Q13)")
async def get_stats(request: web.Request, query: StatsQuery) -> web.StreamResponse:
    """Rows per period (day, hour or month) and group. Past days come from the daily
    rollups (hours from the ticket facts), today from the live facts. As a CSV
    download with format=csv or Accept: text/csv (UTF-8 with a BOM, for Excel)."""
    require(request, Role.MANAGER, Role.ADMIN)
    first, last = _range(query, _today(request))
    report = await server_of(request).stats.report(first, last, query.by, query.group)
    if _wants_csv(request, query):
        return csv_response(report)
    return web.Response(body=msgspec.json.encode(report_json(report)),
                        content_type="application/json")


def report_json(report: Report) -> dict[str, Any]:
    return {
        "from": report.first, "to": report.last, "by": report.by, "group": report.group,
        "live_day": report.live_day, "missing_days": report.missing_days,
        "p90_bucket_edges_s": list(BUCKET_EDGES), "rows": report.rows(),
    }


def report_csv(report: Report) -> bytes:
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([CSV_HEADER[name] for name in FIELDS])
    writer.writerows(zip(*report.columns(), strict=True))
    return out.getvalue().encode("utf-8")


def csv_response(report: Report) -> web.Response:
    name = f"stats_{report.by}_{report.group}_{report.first}_{report.last}.csv"
    return web.Response(
        body=report_csv(report), content_type="text/csv", charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@api.post("/stats/rebuild", body=RebuildIn, response=RebuildOut, roles=MANAGERS,
          tags=("statistics",), summary="Remake the facts and rollups of days from the log")
async def rebuild_stats(request: web.Request, body: RebuildIn) -> RebuildOut:
    """For days that are over only (today is live); at most a month per call."""
    principal = require(request, Role.MANAGER, Role.ADMIN)
    if body.to < body.from_:
        raise _refuse("invalid_range", f"to ({body.to}) is before from ({body.from_})")
    if (body.to - body.from_).days + 1 > MAX_REBUILD_DAYS:
        raise _refuse("range_too_long", f"a rebuild covers at most {MAX_REBUILD_DAYS} days")
    if body.to >= _today(request):
        raise _refuse("day_not_over", f"{body.to} is not over; only finished days are rolled up")
    server = server_of(request)
    rebuilt = await server.stats.rebuild(body.from_, body.to)
    await server.audit.record(principal, "stats.rebuild", f"{body.from_}..{body.to}",
                              {"days": len(rebuilt), "tickets": sum(r.tickets for r in rebuilt)})
    return RebuildOut(days=[RebuiltDay(day=r.day, tickets=r.tickets) for r in rebuilt])
