"""Barcode time nodes (D12): the ticket's QR code or barcode (its ticket id)
scanned at the window moves the ticket on one step and stamps a node.

A called ticket is accepted (``start``), a ticket in service gets its
``handling`` node (materials checked, case taken in), and the next scan
finishes it. Every scan is a ``ticket.node`` hall event with the window, the
staff and the time, next to the engine's own transition, so the statistics
and the backend read the nodes from the log like everything else. A scan of
another window's ticket, of a ticket not called, or of an unknown or ended
one changes nothing and says why.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from hall.audit import AuditEntry
from hall.config import TimeLimits
from hall.eventstore import StoredEvent
from hall.hall_events import TicketNode
from hall.refusals import Refused
from hall.runtime import HallRuntime
from hall.time_limits import TimeLimitWatcher
from queueing import Rejected, Status, Ticket, event_from_dict

ACCEPTED = "accepted"
HANDLING = "handling"
FINISHED = "finished"

NODE_LABELS = {
    "issued": "取号", "called": "叫号", "recalled": "重呼", "started": "开始办理",
    "accepted": "受理", "handling": "办理", "finished": "办结",
    "step_completed": "本项办结", "skipped": "过号", "abandoned": "弃号",
    "transferred": "转移", "held": "挂起", "released": "恢复", "cancelled": "取消",
    "expired": "过期",
}
"""What the nodes are called on a clerk's screen."""


class ScanRefused(Refused):
    """A scan that changed nothing."""


@dataclass(frozen=True, slots=True)
class ScanResult:
    action: str
    """The node the scan stamped: ``accepted``, ``handling`` or ``finished``."""
    ticket_id: str
    node: TicketNode
    stored: list[StoredEvent]


@dataclass(frozen=True, slots=True)
class NodeView:
    """One node of a ticket: the engine's (every transition) or a scan's."""

    kind: str
    label: str
    at: datetime
    window: str | None
    service: str | None
    staff: str | None
    source: Literal["engine", "scan"]


def parse_code(code: str) -> str:
    """A scanner types the code followed by Enter, sometimes in the wrong case."""
    return code.strip().upper()


class TimeNodes:
    """The hall's scan desk and its time-limit watcher, one per server."""

    def __init__(self, runtime: HallRuntime, pool: asyncpg.Pool, limits: TimeLimits) -> None:
        self.runtime = runtime
        self.pool = pool
        self.watcher = TimeLimitWatcher(runtime, pool, limits)
        self._locks: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        await self.watcher.start()

    def stop(self) -> None:
        self.watcher.stop()

    async def scan(
        self, window_id: str, code: str, by: str, audit: AuditEntry | None = None
    ) -> ScanResult:
        """The next step for the scanned ticket at this window. Scans at one
        window are taken one at a time: a double scan must not accept twice or
        skip the handling node."""
        engine = self.runtime.engine
        window = engine.window(window_id)
        lock = self._locks.setdefault(window_id, asyncio.Lock())
        async with lock:
            ticket = self._ticket(parse_code(code))
            refuse_elsewhere(ticket, window_id)
            service, staff = ticket.service, window.staff
            stored: list[StoredEvent] = []
            if ticket.status is Status.CALLED:
                action = ACCEPTED
                stored += await self.runtime.execute("start", window_id, audit=audit)
            elif await self.handled(ticket, window_id):
                action = FINISHED
                stored += await self.runtime.execute("finish", window_id, audit=audit)
            else:
                action = HANDLING
                if audit is not None:
                    await AuditEntry.table.write(self.pool, self.runtime.hall_id, [audit.row()])
            node = TicketNode(self.runtime.clock.now(), ticket.id, ticket.number, action,
                              window_id, staff, service, by)
            stored += await self.runtime.record([node])
            return ScanResult(action, ticket.id, node, stored)

    def _ticket(self, ticket_id: str) -> Ticket:
        try:
            return self.runtime.engine.ticket(ticket_id)
        except Rejected:
            raise ScanRefused("unknown_ticket", f"no ticket of today has the code {ticket_id!r}",
                              404) from None

    async def handled(self, ticket: Ticket, window_id: str) -> bool:
        """Whether this service of the ticket already has its handling node here."""
        started = ticket.started_at
        return started is not None and any(
            node.node == HANDLING and node.window_id == window_id and node.at >= started
            for node in await self.scans(ticket.id)
        )

    async def scans(self, ticket_id: str) -> list[TicketNode]:
        rows = await self.pool.fetch(
            "SELECT data FROM hall_events WHERE hall_id = $1 AND type = 'ticket.node'"
            " AND data->>'ticket_id' = $2 ORDER BY seq",
            self.runtime.hall_id, ticket_id)
        nodes = [event_from_dict(json.loads(row["data"])) for row in rows]
        return [node for node in nodes if isinstance(node, TicketNode)]

    async def nodes(self, ticket: Ticket) -> list[NodeView]:
        """Every node of the ticket in time order, the engine's and the scans'."""
        views = [
            NodeView(n.kind, NODE_LABELS.get(n.kind, n.kind), n.at, n.window, n.service, None,
                     "engine")
            for n in ticket.nodes
        ]
        views += [
            NodeView(n.node, NODE_LABELS.get(n.node, n.node), n.at, n.window_id, n.service_id,
                     n.staff_id, "scan")
            for n in await self.scans(ticket.id)
        ]
        return sorted(views, key=lambda view: view.at)


def refuse_elsewhere(ticket: Ticket, window_id: str) -> None:
    """Only the ticket called or served at this window moves on here."""
    number = ticket.number
    if ticket.status.is_final:
        raise ScanRefused("ticket_already_ended", f"{number} is {ticket.status.value} already")
    if ticket.status in (Status.CALLED, Status.SERVING):
        if ticket.window != window_id:
            raise ScanRefused("not_served_here", f"{number} is at window {ticket.window}, "
                              f"not {window_id}")
        return
    if ticket.status is Status.HELD:
        raise ScanRefused("ticket_held", f"{number} is on hold at {ticket.window}; release it")
    raise ScanRefused("ticket_not_called", f"{number} is still waiting; call it first")
