"""Tickets a kiosk page takes over REST, printed like the kiosk's MQTT ones.

A kiosk PC runs its page in a browser with the kiosk's device token, and its edge
agent on the device bus under the same id (docs/mqtt.md). When the token's name is a
registered kiosk, ``POST /tickets`` first refuses with ``printer_offline`` while its
printer cannot print (as ``kiosk.take_ticket`` does), naming the kiosks that can, and
after the ticket is issued the device link sends ``printer.print`` to the kiosk (or
its stand-alone printer), so the agent prints what the page shows. A token that is no
registered kiosk (a console, a test client) takes tickets without either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from devices.topics import DeviceKind
from hall.api.problems import Problem
from hall.server import HallServer


class TicketPrinter(Protocol):
    """What the device link offers the REST API (``HallServer.printer``)."""

    def print_ticket(self, kiosk_id: str, ticket_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class OtherKiosk:
    id: str
    name: str
    area: str | None
    area_name: str | None
    floor: int | None


PROBLEM_TEXT = {
    "offline": "取号打印机已离线",
    "paper_out": "本机打印纸已用完",
    "cover_open": "打印机舱盖未关闭",
}


def is_kiosk(server: HallServer, device_id: str) -> bool:
    status = server.devices.status(device_id)
    return status is not None and status.spec is not None and status.kind is DeviceKind.KIOSK


def kiosks_that_print(server: HallServer, but: str | None = None) -> list[OtherKiosk]:
    """Allowed kiosks online whose printer can print now, by floor and name."""
    areas = server.config.layout.areas
    found = []
    for status in server.devices.by_kind(DeviceKind.KIOSK):
        if status.id == but or not status.online or status.spec is None:
            continue
        if server.devices.print_problem(status.id) is not None:
            continue
        area = areas.get(status.spec.area or "")
        found.append(OtherKiosk(status.id, status.spec.name, status.spec.area,
                                area.name if area else None, area.floor if area else None))
    return sorted(found, key=lambda k: (k.floor if k.floor is not None else 999, k.name))


def refuse_unprintable(server: HallServer, kiosk_id: str) -> None:
    """``printer_offline`` (409) before anything is issued, when the registered kiosk's
    printer cannot print; ``problem`` says why and ``elsewhere`` where to go instead."""
    if not is_kiosk(server, kiosk_id):
        return
    problem = server.devices.print_problem(kiosk_id)
    if problem is None:
        return
    others = kiosks_that_print(server, but=kiosk_id)
    where = f"请到{others[0].name}取号" if others else "请到其他取号机取号或咨询工作人员"
    raise Problem(
        409, "printer_offline", "The kiosk's printer cannot print",
        f"{PROBLEM_TEXT[problem]}，{where}", problem=problem,
        elsewhere=[{"id": k.id, "name": k.name, "area": k.area, "area_name": k.area_name,
                    "floor": k.floor} for k in others])


def print_at_kiosk(server: HallServer, kiosk_id: str, ticket_id: str) -> None:
    """Send the ticket to the registered kiosk's printer over the device link, if one runs."""
    if server.printer is not None and is_kiosk(server, kiosk_id):
        server.printer.print_ticket(kiosk_id, ticket_id)
