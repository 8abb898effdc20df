"""What screens and boards are sent (hall/client_views.py): scopes, caps, the
size limit, and views that did not change staying unsent."""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import pytest

from devices.registry import DeviceSpec, DeviceStatus
from devices.topics import DeviceKind
from hall import client_views
from hall.client_views import HALL, Displays, audience_of
from hall.runtime import HallRuntime
from tests.engine_kit import Hall


def displays(hall: Hall, **kwargs: Any) -> Displays:
    """Displays reads only ``runtime.engine``; the engine kit's hall has one."""
    return Displays(cast(HallRuntime, hall), {"staff-W1": "张伟"}, lambda: [], lambda: 0,
                    **kwargs)


def board(views: Displays, scope: int | None) -> dict[str, Any]:
    payload = views.board(scope, seq=1, force=True)
    assert payload is not None
    shown: dict[str, Any] = json.loads(payload)
    return shown


def test_a_call_redraws_its_floors_boards_and_the_hall_wide_ones_only() -> None:
    hall = Hall(logged_in=("W1",))
    views = displays(hall)
    hall.take("biz")
    hall.clock.tick()
    screens, scopes, calls = views.note(hall.do("call_next", "W1"))
    assert (screens, scopes) == ({"W1"}, {1, HALL})
    assert [(c.number, c.window_name) for c in calls] == [("A001", "1号窗口")]


def test_a_floor_board_shows_its_floors_calls_and_services_only() -> None:
    hall = Hall(logged_in=("W1",))
    views = displays(hall)
    hall.take("biz")
    hall.clock.tick()
    views.note(hall.do("call_next", "W1"))
    first, second = board(views, 1), board(views, 2)
    assert first["calling"] == [{"number": "A001", "window_name": "1号窗口"}]
    assert first["recent"] == first["calling"]
    assert {w["service"] for w in first["waiting"]} == {"biz", "tax", "house", "morning"}
    assert (second["calling"], second["recent"]) == ([], [])
    assert [w["service"] for w in second["waiting"]] == ["fund"]


def test_the_calling_list_is_latest_first_and_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_views, "MAX_CALLING", 2)
    hall = Hall(logged_in=("W1", "W2", "W3"))
    views = displays(hall)
    for service in ("biz", "biz", "tax"):
        hall.take(service)
    for window in ("W1", "W2", "W3"):
        hall.clock.tick()
        views.note(hall.do("call_next", window))
    assert [c["window_name"] for c in board(views, HALL)["calling"]] == ["3号窗口", "2号窗口"]


def test_a_window_that_starts_serving_leaves_the_calling_list() -> None:
    hall = Hall(logged_in=("W1",))
    views = displays(hall)
    hall.take("biz")
    hall.clock.tick()
    views.note(hall.do("call_next", "W1"))
    hall.clock.tick()
    _, scopes, _ = views.note(hall.do("start", "W1"))
    assert scopes == {1, HALL}
    assert board(views, 1)["calling"] == []


def test_a_view_that_did_not_change_is_not_sent_again() -> None:
    hall = Hall(logged_in=("W1",))
    views = displays(hall)
    assert views.board(1, seq=1) is not None
    assert views.screen("W1", seq=1) is not None
    assert (views.board(1, seq=2), views.screen("W1", seq=2)) == (None, None)
    hall.take("biz")
    assert views.board(1, seq=3) is not None
    views.resend_screen("W1")
    assert views.screen("W1", seq=4) is not None


def test_a_board_over_the_message_limit_drops_services_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    views = displays(Hall(), limit=300)
    with caplog.at_level(logging.WARNING, logger="hall.client_views"):
        payload = views.board(HALL, seq=1)
    assert payload is not None and len(payload) <= 300
    assert 0 < len(json.loads(payload)["waiting"]) < 5
    assert "over the 300-byte message limit" in caplog.text


def test_the_screen_shows_both_positions_that_share_it() -> None:
    hall = Hall(logged_in=("W5A",))
    payload = displays(hall).screen("S5", seq=7)
    assert payload is not None
    shown = json.loads(payload)
    assert [p["window"] for p in shown["positions"]] == ["W5A", "W5B"]
    assert shown["positions"][1]["staff_name"] is None


def test_devices_are_indexed_by_screen_and_by_the_floor_of_their_area() -> None:
    specs = [
        DeviceSpec("screen-s5", DeviceKind.WINDOW_SCREEN, "5号屏", "F2A", screen="S5"),
        DeviceSpec("board-1", DeviceKind.HALL_BOARD, "一楼屏", "F1B"),
        DeviceSpec("led-1", DeviceKind.LED_STRIP, "一楼条屏", "F1A"),
        DeviceSpec("board-hall", DeviceKind.HALL_BOARD, "大厅屏"),
        DeviceSpec("voice", DeviceKind.ANNOUNCER, "广播"),
        DeviceSpec("kiosk-1", DeviceKind.KIOSK, "取号机", "F1A"),
    ]
    audience = audience_of([DeviceStatus(s.id, s) for s in specs] + [DeviceStatus("x", None)],
                           {"F1A": 1, "F1B": 1, "F2A": 2})
    assert audience.screens == {"S5": ("screen-s5",)}
    assert audience.boards == {1: ("board-1", "led-1"), HALL: ("board-hall",)}
    assert audience.announcers == ("voice",)
    assert "kiosk-1" not in audience.device_ids


def test_a_board_approved_a_moment_ago_is_in_the_audience_at_once() -> None:
    """The index of who shows what is rebuilt when the specs change, not on a timer."""
    hall = Hall()
    statuses: list[DeviceStatus] = []
    version = [0]
    views = Displays(cast(HallRuntime, hall), {}, lambda: statuses, lambda: version[0])
    assert views.audience().boards == {}
    statuses.append(DeviceStatus("board-1", DeviceSpec(
        "board-1", DeviceKind.HALL_BOARD, "一楼大屏", area=next(iter(views.scope_of_area)))))
    assert views.audience().boards == {}, "no change of spec was said: the index stands"
    version[0] += 1
    assert set(views.audience().device_ids) == {"board-1"}
