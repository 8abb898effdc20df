"""Notifications as one part of the hall server: built with it, started after
the hall has restored its state (the rules read the engine), stopped before it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import asyncpg
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hall.citizens import CitizenStore
from hall.config import HallConfig
from hall.notify.contacts import Contacts
from hall.notify.gateways import Gateway, build_gateway, close_all
from hall.notify.intake import Intake
from hall.notify.listener import NotifyListener
from hall.notify.outbox import OutboxStore
from hall.notify.sender import STORAGE_ERRORS, Sender
from hall.pii import Vault
from hall.runtime import HallRuntime

log = logging.getLogger(__name__)

STATUSES = ("pending", "sending", "sent", "failed")


class Notifications:
    def __init__(self, config: HallConfig, runtime: HallRuntime, pool: asyncpg.Pool,
                 citizens: CitizenStore, vault: Vault,
                 listener: NotifyListener | None = None) -> None:
        """``listener``: the process's, when it serves several halls; else the hall's own."""
        self.config = config.notifications
        self._own_listener = listener is None
        self.listener = listener or NotifyListener(pool)
        hall_id = runtime.hall_id
        self.store = OutboxStore(pool, hall_id)
        self.contacts = Contacts(pool, vault, citizens, hall_id)
        self.gateways: dict[str, Gateway] = {}
        if self.config.enabled:
            self.gateways = {g.id: build_gateway(g) for g in self.config.gateways.values()}
        self.sender = Sender(self.config, self.store, self.gateways, self.contacts.of)
        self.intake = Intake(config, runtime, pool, self.store, self.contacts, self.sender.wake,
                             self.listener)
        self.counts: dict[str, int] = {}
        self.sender.on_idle = self.refresh_counts
        self._hall_id = hall_id
        self._tasks: list[asyncio.Task[None]] = []

    def _metrics_into(self, registry: CollectorRegistry) -> None:
        attempts = Counter("hall_notification_attempts", "Delivery attempts by outcome",
                           ["hall", "gateway", "outcome"], registry=registry)
        self.sender.on_attempt = lambda gateway, outcome: attempts.labels(
            self._hall_id, gateway, outcome).inc()
        registry.register(_OutboxGauges(self, self._hall_id))

    async def start(self, registry: CollectorRegistry) -> None:
        """After the hall's runtime: the rules read the restored engine."""
        self._metrics_into(registry)
        if not self.config.enabled:
            await self.intake.disable()
            return
        await self.intake.open()
        await self.refresh_counts()
        for name, job in (("notify-events", self.intake.run_events()),
                          ("notify-intake", self.intake.run_table()),
                          ("notify-sender", self.sender.run())):
            self._tasks.append(asyncio.create_task(job, name=name))

    async def stop(self) -> None:
        self.intake.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._own_listener:
            await self.listener.close()
        await close_all(self.gateways)

    async def retry(self, row_id: int) -> str | None:
        status = await self.store.retry(row_id)
        if status == "failed":
            self.sender.wake()
            await self.refresh_counts()
        return status

    async def refresh_counts(self) -> None:
        try:
            self.counts = await self.store.counts()
        except STORAGE_ERRORS as exc:
            log.debug("notification counts not refreshed: %s", exc)


class _OutboxGauges(Collector):
    """The outbox's counts as of the sender's last idle moment: a scrape never
    waits on the database."""

    def __init__(self, notifications: Notifications, hall: str) -> None:
        self.notifications = notifications
        self.hall = hall

    def collect(self) -> Iterator[GaugeMetricFamily]:
        gauge = GaugeMetricFamily("hall_notifications", "Messages in the outbox, by status",
                                  labels=["hall", "status"])
        for status in STATUSES:
            gauge.add_metric([self.hall, status], self.notifications.counts.get(status, 0))
        yield gauge
        yield GaugeMetricFamily(
            "hall_notifications_watched", "Tickets waiting to be told their turn is near (Q6)",
            value=self.notifications.intake.watch.watching())
