"""Time limits per service (D12, W2): a ticket that waits or is served longer
than its service allows raises ``alert.raised`` on the hall's log, and
``alert.cleared`` once it is called, finished, moved or ended.

Nothing polls. The watcher keeps one timer, armed for the earliest moment any
ticket will pass its limit, computed from the engine's state (when a ticket
joined its queue, when its service started); a committed event can only bring
that moment forward (a new ticket, a service started) or end an alert (the
ticket moved on), so the bus wakes the watcher for exactly those. Alerts are
on the log, so they survive a restart: the open ones are read back at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from hall.committer import CommitFailed
from hall.config import TimeLimits
from hall.eventstore import StoredEvent
from hall.hall_events import AlertCleared, AlertRaised
from hall.runtime import HallRuntime, Unavailable
from queueing import Event, Rejected, Status, Ticket, event_from_dict

log = logging.getLogger(__name__)

WAITING_TOO_LONG = "waiting_too_long"
SERVING_TOO_LONG = "serving_too_long"

LONGEST_SLEEP = timedelta(minutes=5)
"""The timer never sleeps longer than this much hall time, so a clock that was
set or jumped is noticed within minutes."""
KEEP_LOOKING_BACK = timedelta(days=7)
"""How far back a start looks for alerts still open."""
SHORTEST_SLEEP_S = 0.05
"""Real seconds between two checks at least, whatever the clock's speed."""


@dataclass(frozen=True, slots=True)
class Alert:
    """An open alert: what the status wall shows and ``GET /alerts`` lists."""

    id: str
    kind: str
    ticket_id: str
    number: str
    service_id: str
    window_id: str | None
    staff_id: str | None
    since: datetime
    limit_minutes: float
    raised_at: datetime

    def minutes(self, now: datetime) -> float:
        return round((now - self.since).total_seconds() / 60, 1)


@dataclass(frozen=True, slots=True)
class _Due:
    """An alert some ticket will need at ``at`` (or needs now)."""

    id: str
    kind: str
    ticket: Ticket
    since: datetime
    limit_minutes: float

    @property
    def at(self) -> datetime:
        return self.since + timedelta(minutes=self.limit_minutes)


def waiting_since(ticket: Ticket) -> datetime | None:
    """An appointment waits from its slot, not from an early check-in."""
    since = ticket.enqueued_at
    slot = ticket.appointment_slot
    if since is not None and slot is not None and slot > since:
        return slot
    return since


class TimeLimitWatcher:
    def __init__(self, runtime: HallRuntime, pool: asyncpg.Pool, limits: TimeLimits) -> None:
        self.runtime = runtime
        self.pool = pool
        self.limits = limits
        self.open: dict[str, Alert] = {}
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: datetime | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._unsubscribe = runtime.bus.subscribe(self._on_events)

    @property
    def enabled(self) -> bool:
        limits = [self.limits.default, *self.limits.services.values()]
        return any(
            limit.max_wait_minutes is not None or limit.max_service_minutes is not None
            for limit in limits
        )

    async def start(self) -> None:
        """Read back today's open alerts, then look once: a restart must neither
        raise an alert twice nor miss one that fell due while the hall was down."""
        self.open = await self._load_open()
        await self.check()

    def stop(self) -> None:
        self._unsubscribe()
        self._disarm()
        for task in list(self._tasks):
            task.cancel()

    def alerts(self) -> list[Alert]:
        return sorted(self.open.values(), key=lambda alert: (alert.raised_at, alert.id))

    async def check(self) -> list[StoredEvent]:
        """Raise what fell due, clear what no longer holds, arm the timer for the
        next due moment; returns the events recorded."""
        async with self._lock:
            now = self.runtime.clock.now()
            due = self._due()
            wanted = {item.id: item for item in due if item.at <= now}
            events: list[Event] = [
                _raised(item, now, self._staff_at(item.ticket.window))
                for item_id, item in wanted.items() if item_id not in self.open
            ]
            events += [
                _cleared(alert, now) for alert_id, alert in self.open.items()
                if alert_id not in wanted
            ]
            stored: list[StoredEvent] = []
            if events:
                try:
                    stored = await self.runtime.record(events)
                except (Unavailable, CommitFailed) as exc:
                    log.warning("time-limit alerts not recorded (%s); the next check retries", exc)
                    self._arm(now + timedelta(seconds=30))
                    return []
                for item in events:
                    self._apply(item)
            if stored:  # tickets may have moved while the alerts were stored
                due = self._due()
            later = [item.at for item in due if item.at > now]
            self._arm(min(later) if later else None)
            return stored

    # ----------------------------------------------------------------- state

    def _due(self) -> list[_Due]:
        """Every alert the tickets in queues and at windows will need, with when."""
        found: list[_Due] = []
        for ticket in self.runtime.engine.tickets():
            limit = self.limits.of(ticket.service)
            if ticket.status is Status.WAITING and limit.max_wait_minutes is not None:
                since = waiting_since(ticket)
                if since is not None:
                    found.append(_Due(_alert_id(WAITING_TOO_LONG, ticket.id, since),
                                      WAITING_TOO_LONG, ticket, since, limit.max_wait_minutes))
            elif ticket.status is Status.SERVING and limit.max_service_minutes is not None:
                since = ticket.started_at
                if since is not None:
                    found.append(_Due(_alert_id(SERVING_TOO_LONG, ticket.id, since),
                                      SERVING_TOO_LONG, ticket, since,
                                      limit.max_service_minutes))
        return found

    def _staff_at(self, window_id: str | None) -> str | None:
        return None if window_id is None else self.runtime.engine.window(window_id).staff

    def _apply(self, item: Event) -> None:
        if isinstance(item, AlertRaised):
            self.open[item.alert_id] = Alert(
                item.alert_id, item.kind, item.ticket_id, item.number, item.service_id,
                item.window_id, item.staff_id, item.since, item.limit_minutes, item.at)
        elif isinstance(item, AlertCleared):
            self.open.pop(item.alert_id, None)

    async def _load_open(self) -> dict[str, Alert]:
        """The last week's, not only today's: an alert left open when the hall
        stopped before a rollover is cleared at the first check, its ticket gone."""
        rows = await self.pool.fetch(
            "SELECT data FROM hall_events WHERE hall_id = $1"
            " AND type IN ('alert.raised', 'alert.cleared') AND at > $2 ORDER BY seq",
            self.runtime.hall_id, self.runtime.clock.now() - KEEP_LOOKING_BACK)
        keep, self.open = self.open, {}
        for row in rows:
            self._apply(event_from_dict(json.loads(row["data"])))
        loaded, self.open = self.open, keep
        return loaded

    # ----------------------------------------------------------------- timer

    def _on_events(self, events: Sequence[StoredEvent]) -> None:
        """Look again at once when a ticket with an open alert moved, or when a
        new day began; bring the timer forward for a ticket that now waits or is
        served. Everything else leaves the next due moment where it was."""
        if not self.enabled:
            return
        engine = self.runtime.engine
        alerted = {alert.ticket_id for alert in self.open.values()}
        soonest: datetime | None = None
        for stored in events:
            item = stored.event
            if item.type == "day.started" or getattr(item, "ticket_id", None) in alerted:
                soonest = item.at
                break
            ticket_id = getattr(item, "ticket_id", None)
            if not item.type.startswith("ticket.") or ticket_id is None:
                continue
            with contextlib.suppress(Rejected):
                at = self._due_at(engine.ticket(ticket_id))
                if at is not None and (soonest is None or at < soonest):
                    soonest = at
        if soonest is not None and (self._timer_at is None or soonest < self._timer_at):
            self._arm(soonest)

    def _due_at(self, ticket: Ticket) -> datetime | None:
        limit = self.limits.of(ticket.service)
        if ticket.status is Status.WAITING and limit.max_wait_minutes is not None:
            since = waiting_since(ticket)
            minutes = limit.max_wait_minutes
        elif ticket.status is Status.SERVING and limit.max_service_minutes is not None:
            since, minutes = ticket.started_at, limit.max_service_minutes
        else:
            return None
        return None if since is None else since + timedelta(minutes=minutes)

    def _arm(self, at: datetime | None) -> None:
        self._disarm()
        if at is None:
            return
        clock = self.runtime.clock
        now = clock.now()
        at = min(at, now + LONGEST_SLEEP)
        delay = max(clock.seconds((at - now).total_seconds()), SHORTEST_SLEEP_S)
        self._timer_at = at
        self._timer = asyncio.get_running_loop().call_later(delay, self._fire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        task = asyncio.create_task(self._checked())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _checked(self) -> None:
        try:
            await self.check()
        except Exception:
            log.exception("the time-limit check failed; retrying in a minute")
            self._arm(self.runtime.clock.now() + timedelta(minutes=1))


def _alert_id(kind: str, ticket_id: str, since: datetime) -> str:
    """The same wait or service always gets the same id, so a restart finds it again."""
    return f"{kind}/{ticket_id}/{int(since.timestamp())}"


def _raised(item: _Due, now: datetime, staff_id: str | None) -> AlertRaised:
    ticket = item.ticket
    serving = item.kind == SERVING_TOO_LONG
    return AlertRaised(
        now, item.id, item.kind, ticket.id, ticket.number, ticket.service,
        ticket.window if serving else None,
        staff_id if serving else None, item.since, item.limit_minutes,
        round((now - item.since).total_seconds() / 60, 1),
    )


def _cleared(alert: Alert, now: datetime) -> AlertCleared:
    return AlertCleared(now, alert.id, alert.kind, alert.ticket_id, alert.service_id,
                        alert.window_id, alert.minutes(now))
