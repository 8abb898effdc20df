"""A small hall for engine tests, and a clock that moves only when told.

Five services, six windows (two of them positions on one screen), a package
and two pause reasons: enough to exercise every rule without noise.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from queueing import (
    Area,
    Engine,
    Event,
    Hours,
    Layout,
    NoShowPolicy,
    Package,
    PauseReason,
    Reason,
    Rejected,
    Service,
    Source,
    Window,
)

TZ = ZoneInfo("Asia/Shanghai")
OPENING = datetime(2026, 11, 24, 9, 0, tzinfo=TZ)
"""A Tuesday morning, the moment the hall opens."""

WORKING = Hours(((time(9, 0), time(12, 0)), (time(13, 30), time(17, 0))))


def small_layout(**changes: Any) -> Layout:
    services = {
        "biz": Service("biz", "企业设立登记", "商事登记", "A", avg_service_minutes=10),
        "tax": Service("tax", "发票申领", "税务服务", "B", avg_service_minutes=6),
        "house": Service(
            "house", "不动产登记", "不动产登记", "C", daily_quota=3, avg_service_minutes=20
        ),
        "fund": Service("fund", "公积金提取", "公积金", "D", avg_service_minutes=8),
        "morning": Service(
            "morning", "出入境证件", "公安", "E", hours=Hours(((time(9, 0), time(12, 0)),))
        ),
    }
    windows = {
        "W1": Window("W1", "1号窗口", "F1A", {"biz": 1, "tax": 1}, groups=("front",)),
        "W2": Window("W2", "2号窗口", "F1A", {"biz": 2}, groups=("front",)),
        "W3": Window("W3", "3号窗口", "F1B", {"tax": 1}),
        "W4": Window("W4", "4号窗口", "F1B", {"house": 1, "morning": 1}),
        "W5A": Window("W5A", "5号窗口A", "F2A", {"fund": 1}, screen="S5"),
        "W5B": Window("W5B", "5号窗口B", "F2A", {"fund": 1}, screen="S5"),
    }
    layout = Layout(
        hall_id="test",
        name="测试大厅",
        areas={
            "F1A": Area("F1A", "一楼A区", 1, "A"),
            "F1B": Area("F1B", "一楼B区", 1, "B"),
            "F2A": Area("F2A", "二楼A区", 2, "A"),
        },
        services=services,
        windows=windows,
        packages={"startup": Package("startup", "开办企业", "K", ("biz", "tax"))},
        pause_reasons={
            "break": PauseReason("break", "休息", 15, "工作人员暂时离开"),
            "lunch": PauseReason("lunch", "就餐", 60, "午休，13:30 恢复办理"),
        },
        working_hours=WORKING,
        no_show=NoShowPolicy(requeue_behind=2, max_requeues=1),
    )
    return replace(layout, **changes) if changes else layout


class Clock:
    def __init__(self, start: datetime = OPENING) -> None:
        self.now = start

    def tick(self, minutes: float = 1.0) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now


class Hall:
    """An engine with a clock and a log of every event it produced, so a
    test can replay the day."""

    def __init__(self, layout: Layout | None = None, *, logged_in: tuple[str, ...] = ()) -> None:
        self.layout = layout or small_layout()
        self.engine = Engine(self.layout)
        self.clock = Clock()
        self.log: list[Event] = []
        self.do("start_day", OPENING.date())
        for window_id in logged_in:
            self.do("login", window_id, f"staff-{window_id}")

    def do(self, operation: str, *args: Any, **kwargs: Any) -> list[Event]:
        events: list[Event] = getattr(self.engine, operation)(*args, now=self.clock.now, **kwargs)
        self.log += events
        return events

    def take(self, service: str, source: Source = Source.WALK_IN, **kwargs: Any) -> str:
        """Issue a ticket a minute after the last event; return its id."""
        self.clock.tick()
        issued = self.do("issue", service, source, **kwargs)[0]
        ticket_id: str = issued.ticket_id  # type: ignore[attr-defined]
        return ticket_id

    def call(self, window_id: str) -> str:
        self.clock.tick()
        called = self.do("call_next", window_id)[0]
        ticket_id: str = called.ticket_id  # type: ignore[attr-defined]
        return ticket_id

    def number(self, ticket_id: str) -> str:
        return self.engine.ticket(ticket_id).number


E = TypeVar("E", bound=Event)


def refused(hall: Hall, operation: str, *args: Any, **kwargs: Any) -> Reason:
    """The reason an operation is refused, after checking it changed nothing."""
    before = hall.engine.snapshot()
    with pytest.raises(Rejected) as caught:
        hall.do(operation, *args, **kwargs)
    assert hall.engine.snapshot() == before
    return caught.value.reason


def only(events: list[Event], cls: type[E]) -> E:
    """The one event of this type among ``events``."""
    found = [event for event in events if isinstance(event, cls)]
    assert len(found) == 1, [event.type for event in events]
    return found[0]
