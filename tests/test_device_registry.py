"""The device registry: who may take part, who is online, what needs a person,
and that only real changes become events."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from devices.registry import (
    AlreadyAllowed,
    DeviceChange,
    DeviceSpec,
    Registry,
)
from devices.topics import DeviceKind

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
LATER = T0 + timedelta(minutes=5)

KIOSK = DeviceSpec("kiosk-f1", DeviceKind.KIOSK, "一楼自助取号机", area="f1-a")
CALL = DeviceSpec("call-w01", DeviceKind.CALL_TERMINAL, "1号窗口呼叫器", "f1-a", "w01")
SCREEN = DeviceSpec("screen-s12", DeviceKind.WINDOW_SCREEN, "12号窗口屏", "f1-b", screen="S12")


def registry() -> Registry:
    return Registry([KIOSK, CALL, SCREEN])


def online(reg: Registry, device_id: str, kind: DeviceKind = DeviceKind.KIOSK) -> None:
    reg.came_online(device_id, kind, "1.0.0", "cfg-1", T0)


def types(changes: list[DeviceChange]) -> list[str]:
    return [change.type for change in changes]


# --- Known and unknown devices -------------------------------------------------


def test_configured_devices_are_allowed_and_start_offline() -> None:
    reg = registry()
    status = reg.status("kiosk-f1")
    assert status is not None
    assert (status.spec, status.online, status.last_seen, status.quarantined) == (
        KIOSK,
        False,
        None,
        False,
    )
    assert reg.is_allowed("kiosk-f1")


def test_an_id_never_seen_is_not_allowed() -> None:
    reg = registry()
    assert not reg.is_allowed("stranger")
    assert reg.status("stranger") is None


def test_an_unknown_device_is_quarantined_once() -> None:
    reg = registry()
    first = reg.seen("stranger", T0)
    again = reg.seen("stranger", LATER)
    assert first == [DeviceChange("device.quarantined", "stranger", T0)]
    assert again == []
    status = reg.status("stranger")
    assert status is not None
    assert (status.spec, status.quarantined, status.last_seen) == (None, True, LATER)
    assert not reg.is_allowed("stranger")


def test_an_unknown_device_coming_online_is_quarantined_and_online() -> None:
    reg = registry()
    changes = reg.came_online("stranger", DeviceKind.PRINTER, "2.1", "", T0)
    assert types(changes) == ["device.quarantined", "device.online"]
    assert changes[1].detail["quarantined"] is True
    status = reg.status("stranger")
    assert status is not None
    assert status.kind is DeviceKind.PRINTER


def test_the_same_id_configured_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="listed twice"):
        Registry([KIOSK, KIOSK])


# --- Approval --------------------------------------------------------------------


def test_approval_lets_a_quarantined_device_take_part() -> None:
    reg = registry()
    reg.seen("printer-9", T0)
    spec = DeviceSpec("printer-9", DeviceKind.PRINTER, "9号窗口打印机", "f1-b", "w09")
    changes = reg.approve("printer-9", spec, "liuyang", LATER)
    assert types(changes) == ["device.approved"]
    assert changes[0].detail["by"] == "liuyang"
    assert changes[0].detail["window"] == "w09"
    status = reg.status("printer-9")
    assert status is not None
    assert (status.spec, status.quarantined, status.approved_by) == (spec, False, "liuyang")
    assert status.last_seen == T0
    assert reg.is_allowed("printer-9")


def test_approval_works_before_the_device_connects_for_replay_at_start() -> None:
    reg = registry()
    spec = DeviceSpec("printer-9", DeviceKind.PRINTER, "9号窗口打印机")
    reg.approve("printer-9", spec, "liuyang", T0)
    assert reg.is_allowed("printer-9")
    assert reg.seen("printer-9", LATER) == []


def test_a_configured_device_needs_no_approval() -> None:
    reg = registry()
    with pytest.raises(AlreadyAllowed):
        reg.approve("kiosk-f1", KIOSK, "liuyang", T0)


def test_a_device_is_approved_only_once() -> None:
    reg = registry()
    spec = DeviceSpec("printer-9", DeviceKind.PRINTER, "9号窗口打印机")
    reg.approve("printer-9", spec, "liuyang", T0)
    with pytest.raises(AlreadyAllowed):
        reg.approve("printer-9", spec, "admin", LATER)


def test_approval_with_a_spec_for_another_id_is_refused() -> None:
    reg = registry()
    reg.seen("printer-9", T0)
    with pytest.raises(ValueError, match="spec is for"):
        reg.approve("printer-9", KIOSK, "liuyang", T0)


# --- Online and offline -----------------------------------------------------------


def test_coming_online_produces_one_change() -> None:
    reg = registry()
    first = reg.came_online("kiosk-f1", DeviceKind.KIOSK, "1.0.0", "cfg-1", T0)
    again = reg.came_online("kiosk-f1", DeviceKind.KIOSK, "1.0.0", "cfg-1", LATER)
    assert types(first) == ["device.online"]
    assert first[0].detail == {
        "kind": "kiosk",
        "firmware": "1.0.0",
        "config_version": "cfg-1",
        "quarantined": False,
    }
    assert again == []
    status = reg.status("kiosk-f1")
    assert status is not None
    assert (status.online, status.since, status.last_seen) == (True, T0, LATER)


def test_going_offline_produces_one_change() -> None:
    reg = registry()
    online(reg, "kiosk-f1")
    first = reg.went_offline("kiosk-f1", LATER)
    again = reg.went_offline("kiosk-f1", LATER + timedelta(seconds=1))
    assert first == [
        DeviceChange("device.offline", "kiosk-f1", LATER, {"last_seen": T0.isoformat()})
    ]
    assert again == []
    status = reg.status("kiosk-f1")
    assert status is not None
    assert (status.online, status.since) == (False, LATER)


def test_going_offline_does_not_count_as_hearing_from_the_device() -> None:
    reg = registry()
    online(reg, "kiosk-f1")
    reg.went_offline("kiosk-f1", LATER)
    status = reg.status("kiosk-f1")
    assert status is not None
    assert status.last_seen == T0


def test_a_device_that_never_came_online_cannot_go_offline() -> None:
    reg = registry()
    assert reg.went_offline("kiosk-f1", T0) == []
    assert reg.went_offline("stranger", T0) == []
    assert reg.status("stranger") is None


def test_last_seen_follows_messages_without_a_change() -> None:
    reg = registry()
    online(reg, "kiosk-f1")
    assert reg.seen("kiosk-f1", LATER) == []
    status = reg.status("kiosk-f1")
    assert status is not None
    assert status.last_seen == LATER


def test_last_seen_does_not_go_back_for_a_late_message() -> None:
    reg = registry()
    reg.seen("kiosk-f1", LATER)
    reg.seen("kiosk-f1", T0)
    status = reg.status("kiosk-f1")
    assert status is not None
    assert status.last_seen == LATER


# --- Versions --------------------------------------------------------------------


def test_a_new_firmware_after_a_restart_is_reported() -> None:
    reg = registry()
    online(reg, "kiosk-f1")
    reg.went_offline("kiosk-f1", T0 + timedelta(minutes=1))
    changes = reg.came_online("kiosk-f1", DeviceKind.KIOSK, "1.1.0", "cfg-1", LATER)
    assert types(changes) == ["device.online", "device.version_changed"]
    assert changes[1].detail == {
        "firmware": "1.1.0",
        "config_version": "cfg-1",
        "previous": {"firmware": "1.0.0", "config_version": "cfg-1"},
    }


def test_a_new_config_version_while_online_is_the_only_change() -> None:
    reg = registry()
    online(reg, "kiosk-f1")
    changes = reg.came_online("kiosk-f1", DeviceKind.KIOSK, "1.0.0", "cfg-2", LATER)
    assert types(changes) == ["device.version_changed"]
    status = reg.status("kiosk-f1")
    assert status is not None
    assert status.config_version == "cfg-2"


def test_the_first_versions_heard_are_not_a_change() -> None:
    reg = registry()
    changes = reg.came_online("kiosk-f1", DeviceKind.KIOSK, "1.0.0", "cfg-1", T0)
    assert "device.version_changed" not in types(changes)


# --- Health ------------------------------------------------------------------------


def test_the_same_health_twice_produces_nothing_the_second_time() -> None:
    reg = registry()
    first = reg.health("kiosk-f1", "near_end", "closed", ["jam"], T0)
    again = reg.health("kiosk-f1", "near_end", "closed", ["jam"], LATER)
    assert types(first) == ["device.health_changed"]
    assert again == []


def test_a_healthy_first_report_is_not_a_change() -> None:
    reg = registry()
    assert reg.health("kiosk-f1", "ok", "closed", [], T0) == []


def test_the_order_of_error_codes_is_not_a_change() -> None:
    reg = registry()
    reg.health("kiosk-f1", "ok", "closed", ["jam", "cutter"], T0)
    assert reg.health("kiosk-f1", "ok", "closed", ["cutter", "jam", "jam"], LATER) == []


def test_paper_near_end_then_out_produce_two_changes_and_alerts() -> None:
    reg = registry()
    near_end = reg.health("kiosk-f1", "near_end", "closed", [], T0)
    assert [a.problem for a in reg.alerts() if a.device_id == "kiosk-f1"] == [
        "offline",
        "paper_near_end",
    ]
    out = reg.health("kiosk-f1", "out", "closed", [], LATER)
    assert [*near_end, *out] == [
        DeviceChange(
            "device.health_changed",
            "kiosk-f1",
            T0,
            {
                "paper": "near_end",
                "cover": "closed",
                "errors": [],
                "previous": {"paper": "ok", "cover": "closed", "errors": []},
            },
        ),
        DeviceChange(
            "device.health_changed",
            "kiosk-f1",
            LATER,
            {
                "paper": "out",
                "cover": "closed",
                "errors": [],
                "previous": {"paper": "near_end", "cover": "closed", "errors": []},
            },
        ),
    ]
    [alert] = [a for a in reg.alerts() if a.problem.startswith("paper")]
    assert (alert.problem, alert.since, alert.area) == ("paper_out", LATER, "f1-a")


def test_a_kiosks_built_in_printer_reports_under_the_kiosks_id() -> None:
    reg = registry()
    online(reg, "kiosk-f1")
    reg.health("kiosk-f1", "out", "open", [], LATER)
    status = reg.status("kiosk-f1")
    assert status is not None
    assert (status.paper, status.cover) == ("out", "open")
    assert reg.status("printer") is None


def test_an_open_cover_and_errors_are_alerts() -> None:
    reg = registry()
    online(reg, "kiosk-f1")
    reg.health("kiosk-f1", "ok", "open", ["jam", "cutter"], LATER)
    alerts = [(a.problem, a.detail) for a in reg.alerts() if a.device_id == "kiosk-f1"]
    assert alerts == [("cover_open", ""), ("errors", "cutter, jam")]


def test_paper_that_is_neither_ok_near_end_nor_out_is_refused() -> None:
    reg = registry()
    with pytest.raises(ValueError, match="paper"):
        reg.health("kiosk-f1", "low", "closed", [], T0)  # type: ignore[arg-type]


# --- Alerts, counts and queries --------------------------------------------------


def test_known_devices_not_online_appear_in_alerts_as_offline() -> None:
    reg = registry()
    online(reg, "kiosk-f1")
    reg.came_online("call-w01", DeviceKind.CALL_TERMINAL, "1.0", "c", T0)
    reg.went_offline("call-w01", LATER)
    offline = [(a.device_id, a.since, a.window) for a in reg.alerts() if a.problem == "offline"]
    assert offline == [("call-w01", LATER, "w01"), ("screen-s12", None, None)]


def test_an_online_quarantined_device_is_an_alert_and_an_offline_one_is_not() -> None:
    reg = registry()
    reg.came_online("stranger", DeviceKind.PRINTER, "2.1", "", T0)
    assert [(a.device_id, a.problem) for a in reg.alerts() if a.device_id == "stranger"] == [
        ("stranger", "quarantined")
    ]
    reg.went_offline("stranger", LATER)
    assert [a for a in reg.alerts() if a.device_id == "stranger"] == []


def test_a_device_reporting_another_kind_than_configured_is_an_alert() -> None:
    reg = registry()
    reg.came_online("call-w01", DeviceKind.EVALUATION_TERMINAL, "1.0", "c", T0)
    [alert] = [a for a in reg.alerts() if a.device_id == "call-w01"]
    assert (alert.problem, alert.kind, alert.detail) == (
        "kind_mismatch",
        DeviceKind.CALL_TERMINAL,
        "evaluation_terminal",
    )


def test_online_counts_give_every_kind_and_skip_quarantined_devices() -> None:
    reg = registry()
    online(reg, "kiosk-f1")
    reg.came_online("screen-s12", DeviceKind.WINDOW_SCREEN, "1.0", "c", T0)
    reg.came_online("stranger", DeviceKind.KIOSK, "1.0", "c", T0)
    counts = reg.online_counts()
    assert set(counts) == set(DeviceKind)
    assert counts[DeviceKind.KIOSK] == 1
    assert counts[DeviceKind.WINDOW_SCREEN] == 1
    assert counts[DeviceKind.CALL_TERMINAL] == 0


def test_devices_are_found_by_window_screen_and_kind() -> None:
    reg = registry()
    reg.seen("stranger", T0)
    assert [s.id for s in reg.by_window("w01")] == ["call-w01"]
    assert [s.id for s in reg.by_screen("S12")] == ["screen-s12"]
    assert [s.id for s in reg.by_kind(DeviceKind.KIOSK)] == ["kiosk-f1"]
    assert [s.id for s in reg.all()] == ["kiosk-f1", "call-w01", "screen-s12", "stranger"]


def test_the_registry_runs_without_the_hall_server() -> None:
    """The edge agent ships devices/ alone: importing the registry must not pull in hall."""
    code = "import sys, devices.registry; sys.exit('hall' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_spec_version_changes_when_a_device_is_added_or_approved_only() -> None:
    reg = registry()
    before = reg.spec_version
    online(reg, "kiosk-f1")
    reg.seen("kiosk-f1", LATER)
    reg.went_offline("kiosk-f1", LATER)
    assert reg.spec_version == before
    reg.seen("stranger", T0)
    quarantined = reg.spec_version
    assert quarantined > before
    reg.approve("stranger", DeviceSpec("stranger", DeviceKind.HALL_BOARD, "大屏", "f1-a"),
                "manager", LATER)
    assert reg.spec_version > quarantined
