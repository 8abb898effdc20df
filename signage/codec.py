"""Signage content as JSON and back: how it is stored, and how the API shows it.

Only checked content is encoded; decoding trusts what was stored from it.
"""

from __future__ import annotations

from datetime import date, time
from typing import Any

from signage.model import Group, Item, ItemKind, Layout, Region, RegionKind, Schedule


def layout_to_json(layout: Layout) -> dict[str, Any]:
    return {"id": layout.id, "name": layout.name, "regions": [
        {"id": r.id, "kind": r.kind.value, "x": r.x, "y": r.y, "w": r.w, "h": r.h}
        for r in layout.regions]}


def layout_from_json(data: dict[str, Any]) -> Layout:
    return Layout(data["id"], data["name"], tuple(
        Region(r["id"], RegionKind(r["kind"]), float(r["x"]), float(r["y"]), float(r["w"]),
               float(r["h"]))
        for r in data["regions"]))


def item_to_json(item: Item) -> dict[str, Any]:
    return {"id": item.id, "kind": item.kind.value, "title": item.title, "text": item.text,
            "url": item.url, "seconds": item.seconds, "services": list(item.services)}


def item_from_json(data: dict[str, Any]) -> Item:
    return Item(data["id"], ItemKind(data["kind"]), data.get("title", ""), data.get("text"),
                data.get("url"), data.get("seconds"), tuple(data.get("services", ())))


def group_to_json(group: Group) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "areas": sorted(group.areas),
            "floors": sorted(group.floors), "kinds": sorted(group.kinds),
            "devices": sorted(group.devices)}


def group_from_json(data: dict[str, Any]) -> Group:
    return Group(data["id"], data["name"], frozenset(data.get("areas", ())),
                 frozenset(data.get("floors", ())), frozenset(data.get("kinds", ())),
                 frozenset(data.get("devices", ())))


def schedule_to_json(schedule: Schedule) -> dict[str, Any]:
    return {
        "id": schedule.id, "name": schedule.name, "group": schedule.group,
        "layout": schedule.layout,
        "playlist": {region: list(ids) for region, ids in schedule.playlist.items()},
        "priority": schedule.priority, "weekdays": sorted(schedule.weekdays),
        "start": _clock(schedule.start), "end": _clock(schedule.end),
        "start_date": _day(schedule.start_date), "end_date": _day(schedule.end_date),
        "enabled": schedule.enabled,
    }


def schedule_from_json(data: dict[str, Any]) -> Schedule:
    return Schedule(
        id=data["id"], name=data["name"], group=data["group"], layout=data["layout"],
        playlist={region: tuple(ids) for region, ids in data.get("playlist", {}).items()},
        priority=int(data.get("priority", 0)), weekdays=frozenset(data.get("weekdays", ())),
        start=_parse_clock(data.get("start")), end=_parse_clock(data.get("end")),
        start_date=_parse_day(data.get("start_date")), end_date=_parse_day(data.get("end_date")),
        enabled=bool(data.get("enabled", True)),
    )


def _clock(value: time | None) -> str | None:
    return None if value is None else value.strftime("%H:%M")


def _parse_clock(value: str | None) -> time | None:
    return None if value is None else time.fromisoformat(value)


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)
