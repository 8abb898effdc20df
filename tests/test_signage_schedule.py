"""What a screen shows at a given moment (signage/schedule.py): pure, no clock."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from signage.model import (
    Content,
    ContentError,
    Group,
    Item,
    ItemKind,
    Layout,
    Notice,
    Region,
    RegionKind,
    Schedule,
    Screen,
    check_layout,
    check_schedule,
)
from signage.schedule import active_notices, next_change, occurrence, plan, resolve, winner

ZONE = ZoneInfo("Asia/Shanghai")
BOARD = Screen("board-f1", "hall_board", "f1-a", 1)
SCREEN_W01 = Screen("screen-w01", "window_screen", "f1-a", 1)
SCREEN_F2 = Screen("screen-w20", "window_screen", "f2-b", 2)

FULL = Layout("full", "整屏", (Region("main", RegionKind.MEDIA, 0, 0, 100, 100),))
SPLIT = Layout("split", "分屏", (
    Region("main", RegionKind.MEDIA, 0, 0, 70, 90),
    Region("calls", RegionKind.CALLING, 70, 0, 30, 90),
    Region("ticker", RegionKind.TICKER, 0, 90, 100, 10),
))
ITEMS = {
    "promo": Item("promo", ItemKind.VIDEO, "宣传片", url="https://media.example/promo.mp4"),
    "lunch": Item("lunch", ItemKind.NOTICE, "午间", text="午间不间断服务", seconds=15),
    "queue": Item("queue", ItemKind.QUEUE, "排队", seconds=20),
}
EVERYWHERE = Group("all", "全部屏幕")


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """March 2026: the 16th is a Monday."""
    return datetime(2026, 3, day, hour, minute, tzinfo=ZONE)


def content(*schedules: Schedule, groups: tuple[Group, ...] = (EVERYWHERE,),
            notices: tuple[Notice, ...] = ()) -> Content:
    return Content(layouts={"full": FULL, "split": SPLIT}, items=ITEMS,
                   groups={g.id: g for g in groups},
                   schedules={s.id: s for s in schedules}, notices=notices)


def daytime(id_: str = "day", **fields: object) -> Schedule:
    values: dict[str, object] = {"name": id_, "group": "all", "layout": "split",
                                 "playlist": {"main": ("promo",)},
                                 "start": time(8, 30), "end": time(17, 30)}
    values.update(fields)
    return Schedule(id=id_, **values)  # type: ignore[arg-type]


def shown(c: Content, moment: datetime, screen: Screen = BOARD) -> str | None:
    showing = resolve(c, screen, moment, ZONE)
    return None if showing.schedule is None else showing.schedule.id


def test_a_schedule_plays_inside_its_time_range_and_not_outside() -> None:
    c = content(daytime())
    assert shown(c, at(16, 8, 29)) is None
    assert shown(c, at(16, 8, 30)) == "day"
    assert shown(c, at(16, 17, 29)) == "day"
    assert shown(c, at(16, 17, 30)) is None


def test_weekdays_limit_the_days_it_plays() -> None:
    c = content(daytime(weekdays=frozenset({1, 2, 3, 4, 5})))
    assert shown(c, at(20, 10)) == "day"  # Friday
    assert shown(c, at(21, 10)) is None  # Saturday


def test_a_date_range_is_inclusive_at_both_ends() -> None:
    c = content(daytime(start_date=date(2026, 3, 17), end_date=date(2026, 3, 18)))
    assert shown(c, at(16, 10)) is None
    assert shown(c, at(17, 10)) == "day"
    assert shown(c, at(18, 10)) == "day"
    assert shown(c, at(19, 10)) is None


def test_the_higher_priority_wins_an_overlap() -> None:
    lunch = daytime("lunch", start=time(12), end=time(14), priority=5,
                    playlist={"ticker": ("lunch",)})
    c = content(daytime(), lunch)
    assert shown(c, at(16, 11, 59)) == "day"
    assert shown(c, at(16, 12)) == "lunch"
    assert shown(c, at(16, 14)) == "day"


def test_a_lower_priority_never_wins_however_late_it_began() -> None:
    late = daytime("late", start=time(12), end=time(13), priority=-1)
    assert shown(content(daytime(), late), at(16, 12, 30)) == "day"


def test_between_equal_priorities_the_run_that_began_last_takes_over() -> None:
    short = daytime("short", start=time(12), end=time(13))
    assert shown(content(daytime(), short), at(16, 12, 30)) == "short"


def test_between_equal_runs_the_smaller_id_wins() -> None:
    c = content(daytime("b-day"), daytime("a-day"))
    assert shown(c, at(16, 10)) == "a-day"


def test_a_run_past_midnight_belongs_to_the_day_it_starts_on() -> None:
    night = daytime("night", start=time(22), end=time(2), weekdays=frozenset({5}))  # Friday
    c = content(night)
    assert shown(c, at(20, 21, 59)) is None
    assert shown(c, at(20, 23, 59)) == "night"
    assert shown(c, at(21, 0, 0)) == "night"  # Saturday, still Friday's run
    assert shown(c, at(21, 1, 59)) == "night"
    assert shown(c, at(21, 2, 0)) is None
    assert shown(c, at(21, 23)) is None  # Saturday's own night does not play


def test_a_run_past_midnight_ends_with_its_date_range() -> None:
    night = daytime("night", start=time(22), end=time(2), end_date=date(2026, 3, 16))
    c = content(night)
    assert shown(c, at(17, 1)) == "night"  # Monday's run, into Tuesday
    assert shown(c, at(17, 23)) is None


def test_a_whole_day_schedule_runs_from_midnight_to_midnight() -> None:
    c = content(daytime("holiday", start=None, end=None, start_date=date(2026, 3, 17),
                        end_date=date(2026, 3, 17)))
    assert shown(c, at(16, 23, 59)) is None
    assert shown(c, at(17, 0, 0)) == "holiday"
    assert shown(c, at(18, 0, 0)) is None


def test_a_disabled_schedule_never_plays() -> None:
    assert shown(content(daytime(enabled=False)), at(16, 10)) is None


def test_screen_groups_pick_screens_by_floor_and_kind() -> None:
    floor_1_boards = Group("f1-boards", "一楼大屏", floors=frozenset({1}),
                           kinds=frozenset({"hall_board"}))
    c = content(daytime(group="f1-boards"), groups=(floor_1_boards,))
    assert shown(c, at(16, 10), BOARD) == "day"
    assert shown(c, at(16, 10), SCREEN_W01) is None
    assert shown(c, at(16, 10), SCREEN_F2) is None


def test_a_group_by_device_id_lists_only_those() -> None:
    listed = Group("listed", "指定屏", devices=frozenset({"screen-w20"}))
    c = content(daytime(group="listed"), groups=(listed,))
    assert shown(c, at(16, 10), SCREEN_F2) == "day"
    assert shown(c, at(16, 10), BOARD) is None


def test_a_screen_gets_the_layout_and_the_playlist_of_each_region() -> None:
    showing = resolve(content(daytime()), BOARD, at(16, 10), ZONE)
    assert showing.layout == SPLIT
    assert [(region.id, [item.id for item in items]) for region, items in showing.regions] == [
        ("main", ["promo"]), ("calls", []), ("ticker", [])]


def test_until_is_the_next_moment_what_is_shown_changes() -> None:
    lunch = daytime("lunch", start=time(12), end=time(14), priority=5)
    c = content(daytime(), lunch)
    assert resolve(c, BOARD, at(16, 9), ZONE).until == at(16, 12)
    assert resolve(c, BOARD, at(16, 12), ZONE).until == at(16, 14)
    assert resolve(c, BOARD, at(16, 14), ZONE).until == at(16, 17, 30)
    assert resolve(c, BOARD, at(16, 18), ZONE).until == at(17, 8, 30)


def test_until_skips_boundaries_that_change_nothing() -> None:
    every_day = daytime("always", start=None, end=None)
    assert resolve(content(every_day), BOARD, at(16, 10), ZONE).until is None


def test_an_urgent_notice_reaches_every_screen_while_it_is_live() -> None:
    notice = Notice("n1", "系统升级", "urgent", at(16, 9), at(16, 11))
    c = content(notices=(notice,))
    showings = plan(c, [BOARD, SCREEN_W01, SCREEN_F2], at(16, 10), ZONE)
    assert all(s.notices == (notice,) for s in showings.values())
    assert all(s.until == at(16, 11) for s in showings.values())
    assert resolve(c, BOARD, at(16, 11), ZONE).notices == ()


def test_notices_come_most_pressing_first_then_newest() -> None:
    old_info = Notice("a", "旧", "info", at(16, 8), at(16, 18))
    new_info = Notice("b", "新", "info", at(16, 9), at(16, 18))
    urgent = Notice("c", "急", "urgent", at(16, 7), at(16, 18))
    assert [n.id for n in active_notices([old_info, new_info, urgent], at(16, 10))] == [
        "c", "b", "a"]


def test_next_change_is_the_earliest_of_all_screens() -> None:
    floor_2 = Group("f2", "二楼", floors=frozenset({2}))
    c = content(daytime(), daytime("f2-noon", group="f2", start=time(11), end=time(12)),
                groups=(EVERYWHERE, floor_2))
    showings = plan(c, [BOARD, SCREEN_F2], at(16, 10), ZONE)
    assert showings["board-f1"].until == at(16, 17, 30)
    assert next_change(showings.values()) == at(16, 11)


def test_occurrence_gives_the_run_that_covers_the_moment() -> None:
    night = daytime("night", start=time(22), end=time(2))
    assert occurrence(night, at(17, 1), ZONE) == (at(16, 22), at(17, 2))


def test_winner_is_none_when_nothing_plays() -> None:
    assert winner([daytime()], at(16, 20), ZONE) is None


def test_a_playlist_item_must_fit_its_region() -> None:
    bad = daytime(playlist={"ticker": ("promo",)})
    with pytest.raises(ContentError, match="ticker region cannot play the video"):
        check_schedule(bad, content())


def test_a_schedule_needs_both_ends_of_its_time_range() -> None:
    with pytest.raises(ContentError, match="both start and end"):
        check_schedule(daytime(end=None), content())


def test_a_region_must_lie_within_the_screen() -> None:
    with pytest.raises(ContentError, match="within the screen"):
        check_layout(Layout("x", "x", (Region("r", RegionKind.MEDIA, 50, 0, 60, 100),)))


def test_resolution_is_the_same_every_time() -> None:
    c = content(daytime(), daytime("short", start=time(12), end=time(13)))
    moments = [at(16, 8) + timedelta(minutes=17 * i) for i in range(60)]
    first = [resolve(c, BOARD, moment, ZONE) for moment in moments]
    assert first == [resolve(c, BOARD, moment, ZONE) for moment in moments]
