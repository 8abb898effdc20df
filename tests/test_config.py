"""The hall's TOML configuration: the demo hall, defaults, and error messages
that point the hall manager at the exact key to fix."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import hall.config
from devices.topics import DeviceKind
from hall.config import (
    AuthConfig,
    ConfigError,
    DeviceEntry,
    HallConfig,
    OidcConfig,
    StaffEntry,
    TicketText,
    TokenEntry,
    load_hall_config,
)
from queueing.layout import DEFAULT_PAUSE_REASONS, Layout, LayoutError
from queueing.strategies import DEFAULT_STRATEGY, StrategySpec

DEMO = Path(__file__).resolve().parent.parent / "config" / "demo-hall.toml"

MINIMAL = """\
[hall]
id = "test-hall"
name = "测试大厅"
working_hours = ["09:00-12:00", "13:30-17:30"]

[[areas]]
id = "f1-a"
name = "一楼A区"
floor = 1

[[services]]
id = "tax-01"
name = "纳税申报"
category = "税务服务"
prefix = "J"

[[services]]
id = "tax-02"
name = "发票领用"
category = "税务服务"
prefix = "J"

[[windows]]
id = "w01"
name = "1号窗口"
area = "f1-a"
services = ["tax-01", "tax-02"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hall.toml"
    path.write_text(text, encoding="utf-8")
    return path


def package(package_id: str, services: str, prefix: str = "P") -> str:
    return (
        f'[[packages]]\nid = "{package_id}"\nname = "套餐"\nprefix = "{prefix}"\n'
        f"services = {services}\n"
    )


def window(window_id: str, area: str, services: str) -> str:
    return (
        f'[[windows]]\nid = "{window_id}"\nname = "窗口"\narea = "{area}"\nservices = {services}\n'
    )


def load(tmp_path: Path, extra: str = "", base: str = MINIMAL) -> HallConfig:
    return load_hall_config(write(tmp_path, base + extra))


def problems(tmp_path: Path, extra: str = "", base: str = MINIMAL) -> list[str]:
    """The error lines, each without the leading file name (checked here)."""
    path = write(tmp_path, base + extra)
    with pytest.raises(ConfigError) as caught:
        load_hall_config(path)
    lines = str(caught.value).splitlines()
    prefix = f"{path}: "
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


@pytest.fixture(scope="module")
def demo() -> HallConfig:
    return load_hall_config(DEMO)


# --- The demo hall -----------------------------------------------------------


def test_demo_hall_loads_with_three_floors_six_areas_and_about_forty_windows(
    demo: HallConfig,
) -> None:
    layout = demo.layout
    assert layout.hall_id == "jiangyang"
    assert layout.name == "江阳区政务服务中心"
    assert {area.floor for area in layout.areas.values()} == {1, 2, 3}
    assert len(layout.areas) == 6
    for floor in (1, 2, 3):
        assert sum(area.floor == floor for area in layout.areas.values()) == 2
    assert 35 <= len(layout.windows) <= 45


def test_demo_hall_has_about_sixty_services_and_at_least_two_packages(demo: HallConfig) -> None:
    assert 55 <= len(demo.layout.services) <= 65
    assert len(demo.layout.packages) >= 2
    assert demo.layout.packages["open-business"].services == (
        "biz-setup",
        "seal-engraving",
        "tax-register",
        "si-enroll",
    )


def test_every_demo_service_is_served_by_a_window(demo: HallConfig) -> None:
    served = {service for window in demo.layout.windows.values() for service in window.services}
    assert set(demo.layout.services) - served == set()


def test_every_demo_area_has_windows(demo: HallConfig) -> None:
    used = {window.area for window in demo.layout.windows.values()}
    assert used == set(demo.layout.areas)


def test_demo_has_two_positions_on_one_screen_serving_the_same_services(
    demo: HallConfig,
) -> None:
    on_s12 = [window for window in demo.layout.windows.values() if window.screen_id == "S12"]
    assert [window.name[:3] for window in on_s12] == ["12A", "12B"]
    assert on_s12[0].services == on_s12[1].services


def test_demo_ticket_text_gives_direction_materials_and_notice_for_every_service(
    demo: HallConfig,
) -> None:
    for service_id in demo.layout.services:
        text = demo.tickets[service_id]
        assert text.direction.startswith("请"), service_id
        assert 1 <= len(text.materials) <= 5, service_id
        assert text.notice, service_id


def test_demo_pause_reasons_have_limits_and_screen_messages(demo: HallConfig) -> None:
    reasons = demo.layout.pause_reasons
    labels = {reason.label for reason in reasons.values()}
    assert labels == {"休息", "就餐", "会议", "业务咨询", "其他"}
    assert reasons["break"].limit_minutes == 15
    assert reasons["meal"].limit_minutes == 60
    assert all(reason.message for reason in reasons.values())


def test_demo_housing_fund_closes_earlier_and_exit_entry_opens_on_saturday(
    demo: HallConfig,
) -> None:
    layout = demo.layout
    assert layout.services["hf-withdraw"].hours.intervals[-1][1] == time(16, 30)
    assert layout.working_hours.intervals[-1][1] == time(17, 30)
    saturday = 5
    assert saturday in layout.services["exit-passport"].hours.weekdays
    assert saturday not in layout.working_hours.weekdays
    assert layout.windows["w37"].hours is not None
    assert saturday in layout.windows["w37"].hours.weekdays


def test_demo_quota_limits_second_hand_home_transfers(demo: HallConfig) -> None:
    assert demo.layout.services["re-transfer"].daily_quota == 80


def test_demo_strategies_set_a_default_and_group_area_and_window_assignments(
    demo: HallConfig,
) -> None:
    assert demo.layout.default_strategy.rules[-1].name == "fifo"
    scopes = {assignment.scope for assignment in demo.strategy_assignments}
    assert scopes == {"group", "area", "window"}
    area = next(a for a in demo.strategy_assignments if a.scope == "area")
    assert area.target == "f2-a"
    assert area.spec == StrategySpec.of(
        "transfers_first",
        ("appointments_due", {"early_minutes": 15}),
        "priority_groups_first",
        "fifo",
    )


# --- Defaults and conversions ------------------------------------------------


def test_optional_tables_take_their_defaults(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.timezone == ZoneInfo("Asia/Shanghai")
    assert config.rollover_hour == 3
    assert (config.http_host, config.http_port) == ("127.0.0.1", 8080)
    assert config.database_url is None
    assert config.strategy_assignments == ()
    assert config.layout.default_strategy == DEFAULT_STRATEGY
    assert dict(config.layout.pause_reasons) == dict(DEFAULT_PAUSE_REASONS)
    assert config.layout.number_width == 3


def test_hall_level_settings_are_read(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        '[http]\nhost = "0.0.0.0"\nport = 9000\n'
        '[database]\nurl = "sqlite:///var/hall.db"\n'
        "[policy.no_show]\nrequeue_behind = 5\nmax_requeues = 2\n",
        MINIMAL.replace('name = "测试大厅"', 'name = "测试大厅"\ntimezone = "Asia/Urumqi"'),
    )
    assert config.timezone == ZoneInfo("Asia/Urumqi")
    assert (config.http_host, config.http_port) == ("0.0.0.0", 9000)
    assert config.database_url == "sqlite:///var/hall.db"
    assert config.layout.no_show.requeue_behind == 5
    assert config.layout.no_show.max_requeues == 2


def test_weekdays_are_numbered_from_monday_as_one(tmp_path: Path) -> None:
    config = load(tmp_path, base=MINIMAL.replace("[[areas]]", "weekdays = [1, 6, 7]\n\n[[areas]]"))
    assert config.layout.working_hours.weekdays == frozenset({0, 5, 6})


def test_hall_weekdays_default_to_monday_to_friday(tmp_path: Path) -> None:
    assert load(tmp_path).layout.working_hours.weekdays == frozenset(range(5))


def test_service_without_hours_takes_the_hall_hours(tmp_path: Path) -> None:
    layout = load(tmp_path).layout
    assert layout.services["tax-01"].hours == layout.working_hours


def test_service_with_only_weekdays_keeps_the_hall_intervals(tmp_path: Path) -> None:
    base = MINIMAL.replace('prefix = "J"\n', 'prefix = "J"\nweekdays = [1, 2, 3, 4, 5, 6]\n', 1)
    layout = load(tmp_path, base=base).layout
    assert layout.services["tax-01"].hours.intervals == layout.working_hours.intervals
    assert layout.services["tax-01"].hours.weekdays == frozenset(range(6))


def test_service_hours_override_the_hall_hours(tmp_path: Path) -> None:
    base = MINIMAL.replace('prefix = "J"\n', 'prefix = "J"\nhours = ["09:00-16:30"]\n', 1)
    layout = load(tmp_path, base=base).layout
    assert layout.services["tax-01"].hours.intervals == ((time(9), time(16, 30)),)
    assert layout.services["tax-01"].hours.weekdays == layout.working_hours.weekdays


def test_window_without_hours_follows_the_hall(tmp_path: Path) -> None:
    assert load(tmp_path).layout.windows["w01"].hours is None


def test_window_services_list_means_weight_one(tmp_path: Path) -> None:
    assert load(tmp_path).layout.windows["w01"].services == {"tax-01": 1, "tax-02": 1}


def test_window_services_table_keeps_weights(tmp_path: Path) -> None:
    base = MINIMAL.replace('["tax-01", "tax-02"]', '{ tax-01 = 3, "tax-02" = 1 }')
    assert load(tmp_path, base=base).layout.windows["w01"].services == {"tax-01": 3, "tax-02": 1}


def test_two_services_may_share_a_prefix(tmp_path: Path) -> None:
    services = load(tmp_path).layout.services
    assert services["tax-01"].prefix == services["tax-02"].prefix == "J"


def test_package_prefix_may_equal_a_service_prefix(tmp_path: Path) -> None:
    extra = package("tax-pack", '["tax-01", "tax-02"]', prefix="J")
    assert load(tmp_path, extra).layout.prefix_of("tax-pack") == "J"


def test_every_service_and_package_has_a_ticket_text(tmp_path: Path) -> None:
    config = load(tmp_path, package("tax-pack", '["tax-01", "tax-02"]'))
    assert set(config.tickets) == {"tax-01", "tax-02", "tax-pack"}
    assert config.tickets["tax-pack"] == TicketText()


def test_ticket_text_on_a_service_is_read(tmp_path: Path) -> None:
    base = MINIMAL.replace(
        'prefix = "J"\n',
        'prefix = "J"\ndirection = "请到一楼B区 9-11 号窗口"\n'
        'materials = ["身份证原件", "营业执照副本"]\nnotice = "可网上办理"\n',
        1,
    )
    assert load(tmp_path, base=base).tickets["tax-01"] == TicketText(
        "请到一楼B区 9-11 号窗口", ("身份证原件", "营业执照副本"), "可网上办理"
    )


def test_tickets_table_gives_the_text_of_a_service(tmp_path: Path) -> None:
    text = '[tickets.tax-02]\ndirection = "请到1号窗口"\nmaterials = ["身份证原件"]\n'
    config = load(tmp_path, text)
    assert config.tickets["tax-02"] == TicketText("请到1号窗口", ("身份证原件",), "")


def test_path_may_be_given_as_a_string(tmp_path: Path) -> None:
    assert load_hall_config(str(write(tmp_path, MINIMAL))).layout.hall_id == "test-hall"


# --- Errors name the file, the key path and the problem ----------------------


def test_config_error_is_a_value_error_listing_its_problems(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace('prefix = "J"', 'prefix = "j"', 1))
    with pytest.raises(ValueError) as caught:
        load_hall_config(path)
    assert isinstance(caught.value, ConfigError)
    assert caught.value.source == str(path)
    assert caught.value.problems[0].key == "services[0].prefix"


def test_bad_prefix_names_the_key(tmp_path: Path) -> None:
    base = MINIMAL.replace('prefix = "J"\n\n[[windows]]', 'prefix = "J1"\n\n[[windows]]')
    assert problems(tmp_path, base=base) == ["services[1].prefix: must be 1-2 capital letters"]


def test_unknown_service_in_window_names_the_key(tmp_path: Path) -> None:
    extra = window("w02", "f1-a", "{ tax-99 = 1 }")
    assert problems(tmp_path, extra) == ["windows[1].services: unknown service 'tax-99'"]


def test_unknown_area_in_window_names_the_key(tmp_path: Path) -> None:
    extra = window("w02", "f9-z", '["tax-01"]')
    assert problems(tmp_path, extra) == ["windows[1].area: unknown area 'f9-z'"]


def test_window_serving_nothing_is_reported(tmp_path: Path) -> None:
    base = MINIMAL.replace('["tax-01", "tax-02"]', "[]")
    assert problems(tmp_path, base=base) == ["windows[0].services: must list at least 1"]


def test_zero_weight_is_reported(tmp_path: Path) -> None:
    base = MINIMAL.replace('["tax-01", "tax-02"]', "{ tax-01 = 0 }")
    assert problems(tmp_path, base=base) == [
        "windows[0].services.tax-01: input should be greater than or equal to 1"
    ]


def test_service_listed_twice_in_a_window_is_reported(tmp_path: Path) -> None:
    base = MINIMAL.replace('["tax-01", "tax-02"]', '["tax-01", "tax-01"]')
    assert problems(tmp_path, base=base) == ["windows[0].services: service 'tax-01' listed twice"]


def test_unknown_service_in_package_names_the_key(tmp_path: Path) -> None:
    extra = package("pack", '["tax-01", "tax-77"]')
    assert problems(tmp_path, extra) == ["packages[0].services: unknown service 'tax-77'"]


def test_package_of_one_service_is_reported(tmp_path: Path) -> None:
    extra = package("pack", '["tax-01"]')
    assert problems(tmp_path, extra) == ["packages[0].services: must list at least 2"]


def test_package_id_taken_by_a_service_is_reported(tmp_path: Path) -> None:
    extra = package("tax-01", '["tax-01", "tax-02"]')
    assert problems(tmp_path, extra) == ["packages[0].id: 'tax-01' is already a service id"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            '[[areas]]\nid = "f1-a"\nname = "重复"\nfloor = 2\n',
            "areas[1].id: duplicate id 'f1-a' (first at areas[0])",
        ),
        (
            '[[services]]\nid = "tax-02"\nname = "重复"\ncategory = "税务服务"\nprefix = "K"\n',
            "services[2].id: duplicate id 'tax-02' (first at services[1])",
        ),
        (
            window("w01", "f1-a", '["tax-01"]'),
            "windows[1].id: duplicate id 'w01' (first at windows[0])",
        ),
        (
            package("p", '["tax-01", "tax-02"]') * 2,
            "packages[1].id: duplicate id 'p' (first at packages[0])",
        ),
        (
            '[[pause_reasons]]\ncode = "break"\nlabel = "休息"\nlimit_minutes = 15\nmessage = "a"\n'
            * 2,
            "pause_reasons[1].code: duplicate code 'break' (first at pause_reasons[0])",
        ),
    ],
    ids=["areas", "services", "windows", "packages", "pause_reasons"],
)
def test_duplicate_ids_are_reported_per_table(tmp_path: Path, extra: str, expected: str) -> None:
    assert problems(tmp_path, extra) == [expected]


def test_typo_key_is_reported(tmp_path: Path) -> None:
    base = MINIMAL.replace('prefix = "J"', 'prefix = "J"\navg_servce_minutes = 10', 1)
    assert problems(tmp_path, base=base) == [
        "services[0].avg_servce_minutes: unknown key; did you mean 'avg_service_minutes'?"
    ]


def test_unknown_table_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, "[htp]\nport = 80\n") == ["htp: unknown key; did you mean 'http'?"]


def test_missing_required_key_is_reported(tmp_path: Path) -> None:
    base = MINIMAL.replace('category = "税务服务"\n', "", 1)
    assert problems(tmp_path, base=base) == ["services[0].category: required key is missing"]


def test_string_where_a_number_belongs_is_reported_not_converted(tmp_path: Path) -> None:
    assert problems(tmp_path, '[http]\nport = "8080"\n') == [
        "http.port: input should be a valid integer"
    ]


def test_bad_id_is_reported(tmp_path: Path) -> None:
    base = MINIMAL.replace('id = "w01"', 'id = "1号窗口"')
    assert problems(tmp_path, base=base) == [
        "windows[0].id: must be 1-64 letters, digits, '-' or '_', starting with a letter/digit"
    ]


def test_malformed_interval_names_the_item(tmp_path: Path) -> None:
    base = MINIMAL.replace('"13:30-17:30"', '"13:30~17:30"')
    assert problems(tmp_path, base=base) == [
        "hall.working_hours[1]: '13:30~17:30' is not an interval like '09:00-12:00'"
    ]


def test_overlapping_intervals_are_reported(tmp_path: Path) -> None:
    hours = 'hours = ["09:00-12:00", "11:00-14:00"]\n'
    base = MINIMAL.replace('prefix = "J"\n', f'prefix = "J"\n{hours}', 1)
    assert problems(tmp_path, base=base) == ["services[0].hours: intervals overlap"]


def test_interval_ending_before_it_starts_is_reported(tmp_path: Path) -> None:
    base = MINIMAL.replace('"13:30-17:30"', '"17:30-13:30"')
    assert problems(tmp_path, base=base) == [
        "hall.working_hours: interval 17:30-13:30 ends before it starts"
    ]


@pytest.mark.parametrize("day", [0, 8])
def test_weekday_outside_one_to_seven_is_reported(tmp_path: Path, day: int) -> None:
    base = MINIMAL.replace("[[areas]]", f"weekdays = [1, {day}]\n\n[[areas]]")
    assert problems(tmp_path, base=base) == [
        "hall.weekdays[1]: weekdays are numbered 1 (Monday) to 7 (Sunday)"
    ]


def test_unknown_time_zone_is_reported(tmp_path: Path) -> None:
    base = MINIMAL.replace('name = "测试大厅"', 'name = "测试大厅"\ntimezone = "Asia/Shangai"')
    assert problems(tmp_path, base=base) == ["hall.timezone: invalid timezone: Asia/Shangai"]


def test_unknown_strategy_rule_names_the_key(tmp_path: Path) -> None:
    [line] = problems(tmp_path, '[strategies]\ndefault = ["transfers_first", "fifoo"]\n')
    assert line.startswith("strategies.default: unknown rule 'fifoo'; known rules: ")


def test_bad_strategy_parameter_names_the_key(tmp_path: Path) -> None:
    assign = (
        '[[strategies.assign]]\nscope = "window"\ntarget = "w01"\n'
        'rules = [{ rule = "appointments_due", early = 15 }]\n'
    )
    assert problems(tmp_path, assign) == [
        "strategies.assign[0].rules: rule 'appointments_due' takes no parameter 'early'"
    ]


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("area", "unknown area 'nowhere'"),
        ("window", "unknown window 'nowhere'"),
        ("group", "no window is in group 'nowhere'"),
    ],
)
def test_strategy_for_an_unknown_target_is_reported(
    tmp_path: Path, scope: str, expected: str
) -> None:
    assign = f'[[strategies.assign]]\nscope = "{scope}"\ntarget = "nowhere"\nrules = ["fifo"]\n'
    assert problems(tmp_path, assign) == [f"strategies.assign[0].target: {expected}"]


def test_strategy_for_a_window_group_is_accepted(tmp_path: Path) -> None:
    base = MINIMAL.replace('area = "f1-a"\n', 'area = "f1-a"\ngroups = ["tax"]\n')
    assign = '[[strategies.assign]]\nscope = "group"\ntarget = "tax"\nrules = ["weighted"]\n'
    [assignment] = load(tmp_path, assign, base).strategy_assignments
    assert (assignment.scope, assignment.target) == ("group", "tax")
    assert assignment.spec == StrategySpec.of("weighted")


def test_strategy_assigned_twice_to_one_target_is_reported(tmp_path: Path) -> None:
    assign = '[[strategies.assign]]\nscope = "window"\ntarget = "w01"\nrules = ["fifo"]\n'
    assert problems(tmp_path, assign * 2) == [
        "strategies.assign[1].target: window 'w01' already has a strategy (strategies.assign[0])"
    ]


def test_unknown_strategy_scope_is_reported(tmp_path: Path) -> None:
    assign = '[[strategies.assign]]\nscope = "floor"\ntarget = "1"\nrules = ["fifo"]\n'
    assert problems(tmp_path, assign) == [
        "strategies.assign[0].scope: input should be 'group', 'area' or 'window'"
    ]


def test_ticket_text_for_an_unknown_service_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, '[tickets.tax-99]\nnotice = "x"\n') == [
        "tickets.tax-99: unknown service or package 'tax-99'"
    ]


def test_ticket_text_given_twice_is_reported(tmp_path: Path) -> None:
    base = MINIMAL.replace('prefix = "J"\n', 'prefix = "J"\nnotice = "a"\n', 1)
    assert problems(tmp_path, '[tickets.tax-01]\nnotice = "b"\n', base) == [
        "tickets.tax-01: ticket text already given in services[0]"
    ]


def test_keys_that_toml_would_quote_are_quoted(tmp_path: Path) -> None:
    assert problems(tmp_path, '[tickets."税务"]\nnotice = "x"\n') == [
        "tickets.\"税务\": must be 1-64 letters, digits, '-' or '_', starting with a letter/digit"
    ]


def test_every_problem_is_reported_one_per_line(tmp_path: Path) -> None:
    extra = window("w02", "f9-z", '["tax-99"]')
    assert problems(tmp_path, extra) == [
        "windows[1].area: unknown area 'f9-z'",
        "windows[1].services: unknown service 'tax-99'",
    ]


def test_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[hall]\nid = "x"\nname = 江阳\n')
    with pytest.raises(ConfigError) as caught:
        load_hall_config(path)
    assert str(caught.value).startswith(f"{path}: line 3, column 8: TOML syntax: ")


def test_missing_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot read"):
        load_hall_config(path)


def test_empty_pause_reasons_are_reported(tmp_path: Path) -> None:
    base = "pause_reasons = []\n" + MINIMAL
    assert problems(tmp_path, base=base) == ["pause_reasons: must list at least 1"]


def test_layout_error_from_the_engine_becomes_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loader checks everything the engine does first; should the engine
    ever check more, its verdict still comes out as a ConfigError."""

    def refuse(*_args: object, **_kwargs: object) -> Layout:
        raise LayoutError("window 'w01' serves no service")

    monkeypatch.setattr(hall.config, "Layout", refuse)
    assert problems(tmp_path) == ["window 'w01' serves no service"]


# --- Authentication ------------------------------------------------------------

TOKEN_SHA256 = "f5eb10d254119928b734aa9159024cf02ab1055f222d4f88d085acbc7ed43a3d"
ARGON2_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$NwMY+KrAwhLxm8x9vGKM5A"
    "$29m9c1OP5x7p/nLRORxr1zQ5VLv7EKwD2TL6uujzEZc"
)


def token(name: str = "approval-backend", role: str = "backend", sha: str = TOKEN_SHA256) -> str:
    return f'[[auth.tokens]]\nname = "{name}"\nrole = "{role}"\ntoken_sha256 = "{sha}"\n'


def staff(staff_id: str = "zhangwei", role: str = "staff", password_hash: str = ARGON2_HASH) -> str:
    return (
        f'[[auth.staff]]\nid = "{staff_id}"\nname = "张伟"\nrole = "{role}"\n'
        f"password_hash = '{password_hash}'\n"
    )


def test_demo_hall_loads_its_auth_section(demo: HallConfig) -> None:
    auth = demo.auth
    assert auth.session_ttl == timedelta(hours=12)
    assert [(entry.name, entry.role) for entry in auth.tokens] == [
        ("approval-backend", "backend"), ("kiosk-f1", "device"), ("eval-w01", "device")]
    roles = [member.role for member in auth.staff]
    assert (roles.count("admin"), roles.count("manager"), roles.count("staff")) == (1, 1, 3)
    assert "admin" in {member.id for member in auth.staff}
    assert all(member.password_hash.startswith("$argon2id$") for member in auth.staff)


def test_without_an_auth_table_there_are_no_tokens_and_no_staff(tmp_path: Path) -> None:
    assert load(tmp_path).auth == AuthConfig(session_hours=12, tokens=(), staff=())


def test_the_auth_table_is_read(tmp_path: Path) -> None:
    extra = "[auth]\nsession_hours = 8\n" + token(sha=TOKEN_SHA256.upper()) + staff(role="admin")
    auth = load(tmp_path, extra).auth
    assert auth.session_ttl == timedelta(hours=8)
    assert auth.tokens == (TokenEntry("approval-backend", "backend", TOKEN_SHA256),)
    assert auth.staff == (StaffEntry("zhangwei", "张伟", "admin", ARGON2_HASH),)


@pytest.mark.parametrize("sha", ["not-a-hash", TOKEN_SHA256[:-1], TOKEN_SHA256[:-1] + "g"])
def test_a_bad_token_hash_names_the_key(tmp_path: Path, sha: str) -> None:
    assert problems(tmp_path, token(sha=sha)) == [
        "auth.tokens[0].token_sha256: must be 64 hex digits: the SHA-256 of the token, "
        "not the token"
    ]


def test_a_token_for_a_person_role_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, token(role="admin")) == [
        "auth.tokens[0].role: input should be 'backend' or 'device'"
    ]


def test_a_staff_account_with_a_token_role_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, staff(role="backend")) == [
        "auth.staff[0].role: input should be 'admin', 'manager' or 'staff'"
    ]


def test_a_clear_password_in_the_file_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, staff(password_hash="hall-demo-2026")) == [
        "auth.staff[0].password_hash: must be an argon2 hash ('$argon2id$...'), "
        "not a clear password"
    ]


def test_a_damaged_argon2_hash_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, staff(password_hash="$argon2id$v=19$garbage")) == [
        "auth.staff[0].password_hash: is not a well-formed argon2 hash"
    ]


def test_duplicate_accounts_and_tokens_are_reported(tmp_path: Path) -> None:
    extra = token() + token(sha=TOKEN_SHA256.upper()) + staff() + staff()
    assert problems(tmp_path, extra) == [
        "auth.tokens[1].name: duplicate name 'approval-backend' (first at auth.tokens[0])",
        f"auth.tokens[1].token_sha256: duplicate token_sha256 '{TOKEN_SHA256}' "
        "(first at auth.tokens[0])",
        "auth.staff[1].id: duplicate id 'zhangwei' (first at auth.staff[0])",
    ]


@pytest.mark.parametrize("hours", [0, 169])
def test_session_hours_out_of_range_are_reported(tmp_path: Path, hours: int) -> None:
    [line] = problems(tmp_path, f"[auth]\nsession_hours = {hours}\n")
    assert line.startswith("auth.session_hours: input should be ")


# --- OpenID Connect -------------------------------------------------------------

OIDC = """\
[auth.oidc]
issuer = "https://idp.example.gov.cn/realms/staff"
client_id = "smarthall-jiangyang"
client_secret_env = "HALL_OIDC_CLIENT_SECRET"
redirect_url = "https://hall.example.gov.cn/api/v1/auth/oidc/callback"
"""


def test_without_an_oidc_table_there_is_no_oidc_login(tmp_path: Path) -> None:
    assert load(tmp_path, "[auth]\nsession_hours = 8\n").auth.oidc is None


def test_the_oidc_table_is_read_with_its_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, OIDC).auth.oidc == OidcConfig(
        issuer="https://idp.example.gov.cn/realms/staff",
        client_id="smarthall-jiangyang",
        client_secret_env="HALL_OIDC_CLIENT_SECRET",
        redirect_url="https://hall.example.gov.cn/api/v1/auth/oidc/callback",
        scopes=("openid", "profile"),
        staff_claim="sub",
        role_claim=None,
    )


def test_oidc_scopes_and_claims_can_be_set(tmp_path: Path) -> None:
    extra = OIDC + 'scopes = ["openid", "employee"]\nstaff_claim = "employee_no"\n'
    oidc = load(tmp_path, extra + 'role_claim = "hall_role"\n').auth.oidc
    assert oidc is not None
    assert (oidc.scopes, oidc.staff_claim, oidc.role_claim) == (
        ("openid", "employee"),
        "employee_no",
        "hall_role",
    )


def test_a_client_secret_in_the_file_is_refused(tmp_path: Path) -> None:
    assert problems(tmp_path, OIDC + 'client_secret = "s3cret-value"\n') == [
        "auth.oidc.client_secret: the client secret must not be in the file; put it in an "
        "environment variable and name that in client_secret_env"
    ]


@pytest.mark.parametrize("value", ["Zk3q-9vQ_x7Lm2pR", "hall_oidc_secret", "1SECRET", ""])
def test_client_secret_env_must_be_a_variable_name(tmp_path: Path, value: str) -> None:
    text = OIDC.replace('"HALL_OIDC_CLIENT_SECRET"', f'"{value}"')
    assert problems(tmp_path, text) == [
        "auth.oidc.client_secret_env: must be the name of an environment variable "
        "(capital letters, digits, '_'), not the secret itself"
    ]


@pytest.mark.parametrize(
    "issuer", ["http://127.0.0.1:8900", "http://localhost:8900/realms/x", "http://[::1]:8900"]
)
def test_a_plain_http_issuer_is_accepted_on_this_machine(tmp_path: Path, issuer: str) -> None:
    text = OIDC.replace("https://idp.example.gov.cn/realms/staff", issuer)
    oidc = load(tmp_path, text).auth.oidc
    assert oidc is not None
    assert oidc.issuer == issuer


def test_a_plain_http_issuer_elsewhere_is_refused(tmp_path: Path) -> None:
    text = OIDC.replace("https://", "http://", 1)
    assert problems(tmp_path, text) == [
        "auth.oidc.issuer: must be an https URL (plain http only on 127.0.0.1 or localhost)"
    ]


NOT_AN_ISSUER = "must be an absolute URL without query or fragment"
NOT_A_REDIRECT = "must be an absolute http(s) URL without fragment"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("issuer", "https://idp.example/?realm=x", NOT_AN_ISSUER),
        ("redirect_url", "/api/v1/auth/oidc/callback", NOT_A_REDIRECT),
        ("redirect_url", "https://hall.example/cb#top", NOT_A_REDIRECT),
    ],
)
def test_malformed_oidc_urls_are_reported(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    lines = [line for line in OIDC.splitlines() if not line.startswith(f"{key} =")]
    text = "\n".join([*lines, f'{key} = "{value}"', ""])
    assert problems(tmp_path, text) == [f"auth.oidc.{key}: {message}"]


def test_oidc_scopes_must_include_openid(tmp_path: Path) -> None:
    assert problems(tmp_path, OIDC + 'scopes = ["profile"]\n') == [
        "auth.oidc.scopes: must include 'openid'"
    ]


def test_an_oidc_scope_with_a_space_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, OIDC + 'scopes = ["openid profile"]\n') == [
        "auth.oidc.scopes[0]: must be one scope: printable ASCII without spaces, quotes or '\\'"
    ]


def test_missing_oidc_keys_are_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, '[auth.oidc]\nissuer = "https://idp.example"\n') == [
        "auth.oidc.client_id: required key is missing",
        "auth.oidc.client_secret_env: required key is missing",
        "auth.oidc.redirect_url: required key is missing",
    ]


# --- Devices -------------------------------------------------------------------

DEVICE_PASSWORD_SHA256 = hashlib.sha256(b"device-demo-2026").hexdigest()

TWO_POSITIONS_ONE_SCREEN = (
    '[[areas]]\nid = "f1-b"\nname = "一楼B区"\nfloor = 1\n'
    + window("w12a", "f1-b", '["tax-01"]')
    + 'screen = "S12"\n'
    + window("w12b", "f1-b", '["tax-01"]')
    + 'screen = "S12"\n'
)


def device(device_id: str = "call-w01", kind: str = "call_terminal", **keys: str) -> str:
    lines = [f'[[devices]]\nid = "{device_id}"\nkind = "{kind}"\nname = "设备"\n']
    keys.setdefault("password_sha256", DEVICE_PASSWORD_SHA256)
    lines += [f'{key} = "{value}"\n' for key, value in keys.items()]
    return "".join(lines)


def test_demo_hall_lists_kiosks_window_devices_boards_and_one_shared_screen(
    demo: HallConfig,
) -> None:
    kinds = Counter(entry.kind for entry in demo.devices)
    assert kinds[DeviceKind.KIOSK] == 3
    assert kinds[DeviceKind.HALL_BOARD] == 3
    assert (kinds[DeviceKind.LED_STRIP], kinds[DeviceKind.ANNOUNCER]) == (1, 1)
    for position in ("w01", "w02", "w03", "w04", "w12a", "w12b"):
        at_window = {entry.kind for entry in demo.devices if entry.window == position}
        assert {DeviceKind.CALL_TERMINAL, DeviceKind.EVALUATION_TERMINAL} <= at_window
    [s12] = [entry for entry in demo.devices if entry.screen == "S12"]
    assert (s12.kind, s12.window, s12.area) == (DeviceKind.WINDOW_SCREEN, None, "f1-b")


def test_demo_devices_all_have_the_published_demo_password(demo: HallConfig) -> None:
    assert {entry.password_sha256 for entry in demo.devices} == {DEVICE_PASSWORD_SHA256}


def test_without_devices_tables_there_are_no_devices(tmp_path: Path) -> None:
    assert load(tmp_path).devices == ()


def test_a_device_is_read_and_takes_the_area_of_its_window(tmp_path: Path) -> None:
    assert load(tmp_path, device(window="w01")).devices == (
        DeviceEntry(
            id="call-w01",
            kind=DeviceKind.CALL_TERMINAL,
            name="设备",
            area="f1-a",
            window="w01",
            screen=None,
            password_sha256=DEVICE_PASSWORD_SHA256,
        ),
    )


def test_a_device_hash_is_kept_in_lower_case(tmp_path: Path) -> None:
    extra = device("kiosk-1", "kiosk", password_sha256=DEVICE_PASSWORD_SHA256.upper())
    [entry] = load(tmp_path, extra).devices
    assert entry.password_sha256 == DEVICE_PASSWORD_SHA256


def test_a_device_away_from_windows_may_have_an_area_or_none(tmp_path: Path) -> None:
    extra = device("kiosk-1", "kiosk", area="f1-a") + device("announcer", "announcer")
    assert [(e.area, e.window, e.screen) for e in load(tmp_path, extra).devices] == [
        ("f1-a", None, None),
        (None, None, None),
    ]


def test_a_window_screen_for_one_window_shows_that_windows_screen(tmp_path: Path) -> None:
    [entry] = load(tmp_path, device("screen-w01", "window_screen", window="w01")).devices
    assert (entry.screen, entry.area) == ("w01", "f1-a")


def test_a_shared_window_screen_takes_the_area_of_its_windows(tmp_path: Path) -> None:
    extra = TWO_POSITIONS_ONE_SCREEN + device("screen-s12", "window_screen", screen="S12")
    [entry] = load(tmp_path, extra).devices
    assert (entry.window, entry.screen, entry.area) == (None, "S12", "f1-b")


def test_a_window_screen_may_name_both_its_window_and_screen(tmp_path: Path) -> None:
    extra = TWO_POSITIONS_ONE_SCREEN + device(
        "screen-s12", "window_screen", window="w12a", screen="S12"
    )
    [entry] = load(tmp_path, extra).devices
    assert (entry.window, entry.screen) == ("w12a", "S12")


def test_an_unknown_device_kind_lists_the_kinds(tmp_path: Path) -> None:
    [line] = problems(tmp_path, device("x", "scanner"))
    assert line.startswith("devices[0].kind: must be one of 'kiosk', 'call_terminal', ")
    assert line.endswith("'announcer'")


def test_an_unknown_window_of_a_device_names_the_key(tmp_path: Path) -> None:
    extra = device(window="w01") + device("call-w99", window="w99")
    assert problems(tmp_path, extra) == ["devices[1].window: unknown window 'w99'"]


def test_an_unknown_area_of_a_device_names_the_key(tmp_path: Path) -> None:
    assert problems(tmp_path, device("kiosk-9", "kiosk", area="f9-a")) == [
        "devices[0].area: unknown area 'f9-a'"
    ]


def test_a_device_area_other_than_its_windows_is_reported(tmp_path: Path) -> None:
    extra = TWO_POSITIONS_ONE_SCREEN + device(window="w12a", area="f1-a")
    assert problems(tmp_path, extra) == ["devices[0].area: window 'w12a' is in area 'f1-b'"]


@pytest.mark.parametrize("kind", ["call_terminal", "evaluation_terminal"])
def test_a_window_device_without_a_window_is_reported(tmp_path: Path, kind: str) -> None:
    assert problems(tmp_path, device("t", kind, area="f1-a")) == [
        f"devices[0].window: required for a {kind}"
    ]


def test_a_window_screen_without_window_or_screen_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, device("s", "window_screen")) == [
        "devices[0].window: required for a window_screen without a screen"
    ]


def test_a_screen_on_another_kind_of_device_is_reported(tmp_path: Path) -> None:
    extra = TWO_POSITIONS_ONE_SCREEN + device("board", "hall_board", screen="S12")
    assert problems(tmp_path, extra) == [
        "devices[0].screen: only for a window_screen, not a hall_board"
    ]


def test_a_screen_no_window_shows_on_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, device("s", "window_screen", screen="S99")) == [
        "devices[0].screen: no window shows on screen 'S99'"
    ]


def test_a_window_screen_whose_window_is_on_another_screen_is_reported(tmp_path: Path) -> None:
    extra = TWO_POSITIONS_ONE_SCREEN + device("s", "window_screen", window="w01", screen="S12")
    assert problems(tmp_path, extra) == ["devices[0].screen: window 'w01' shows on screen 'w01'"]


def test_a_clear_device_password_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, device("k", "kiosk", password_sha256="device-demo-2026")) == [
        "devices[0].password_sha256: must be 64 hex digits: the SHA-256 of the password, "
        "not the password"
    ]


def test_a_device_without_a_password_hash_is_reported(tmp_path: Path) -> None:
    extra = '[[devices]]\nid = "k"\nkind = "kiosk"\nname = "取号机"\n'
    assert problems(tmp_path, extra) == ["devices[0].password_sha256: required key is missing"]


def test_duplicate_device_ids_are_reported(tmp_path: Path) -> None:
    extra = device(window="w01") + device("kiosk-1", "kiosk") + device(window="w01")
    assert problems(tmp_path, extra) == [
        "devices[2].id: duplicate id 'call-w01' (first at devices[0])"
    ]


def test_devices_may_share_a_password_hash(tmp_path: Path) -> None:
    extra = device("kiosk-1", "kiosk") + device("kiosk-2", "kiosk")
    assert len(load(tmp_path, extra).devices) == 2


def test_a_typo_in_a_device_key_is_reported(tmp_path: Path) -> None:
    assert problems(tmp_path, device("k", "kiosk", windw="w01")) == [
        "devices[0].windw: unknown key; did you mean 'window'?"
    ]
