"""One hall server, assembled: everything a request handler may need, built
once from the configuration and a database pool, started and stopped as one."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web

from devices.registry import DeviceSpec, Registry
from hall.appointments import AppointmentDesk
from hall.audit import AuditLog
from hall.auth import Authenticator, SessionStore, StaffStore, TokenTable
from hall.backend import BackendStore
from hall.bus import EventBus
from hall.citizens import CitizenStore
from hall.clock import Clock
from hall.config import HallConfig
from hall.metrics import HallMetrics
from hall.notify.listener import NotifyListener
from hall.notify.service import Notifications
from hall.pii import DataKey, Vault
from hall.priority import PriorityGate
from hall.runtime import HallRuntime
from hall.signage_publisher import SignageHub
from hall.signage_store import SignageStore
from hall.stats import Statistics
from hall.stream import EventStream
from hall.time_nodes import TimeNodes

if TYPE_CHECKING:
    from hall.kiosk_print import TicketPrinter


@dataclass
class HallServer:
    config: HallConfig
    pool: asyncpg.Pool
    runtime: HallRuntime
    citizens: CitizenStore
    backend: BackendStore
    audit: AuditLog
    staff: StaffStore
    sessions: SessionStore
    authenticator: Authenticator
    stream: EventStream
    metrics: HallMetrics
    devices: Registry
    """Every device the hall knows or has seen (the device link keeps it)."""
    priority: PriorityGate
    """Priority-group passwords (Q2), one gate for REST and MQTT, so a caller's failed
    attempts count together whichever way they come."""
    appointments: AppointmentDesk
    """Bookings against slot capacity, their late and missed policy (Q1)."""
    time_nodes: TimeNodes
    """Barcode scans at the windows and the time-limit alerts (D12)."""
    signage: SignageHub
    """What the screens' schedules play (D8); the device link publishes it."""
    notifications: Notifications
    """Messages to citizens by SMS and WeChat through the outbox (Q6, Q11, D11)."""
    stats: Statistics
    """Ticket facts and daily rollups from the event log, today live (Q13)."""
    printer: TicketPrinter | None = None
    """The device link while it runs: prints tickets a kiosk page takes over REST
    (hall/kiosk_print.py)."""

    @classmethod
    def assemble(
        cls, config: HallConfig, pool: asyncpg.Pool, clock: Clock, data_key: DataKey,
        *, writers: asyncpg.Pool | None = None, notify_listener: NotifyListener | None = None,
    ) -> HallServer:
        """One pool of ``writers`` (see ``HallRuntime``) and one ``notify_listener`` for
        all when one process leads many halls: neither may hold a connection per hall."""
        hall_id = config.layout.hall_id
        runtime = HallRuntime(config, clock, EventBus(), pool, writers=writers)
        sessions = SessionStore(pool, config.auth.session_ttl)
        vault = Vault(data_key)
        citizens = CitizenStore(pool, vault, hall_id)
        stream = EventStream(runtime, identities=citizens.load)
        return cls(
            config=config,
            pool=pool,
            runtime=runtime,
            citizens=citizens,
            backend=BackendStore(pool, hall_id),
            audit=AuditLog(pool, hall_id),
            staff=StaffStore(pool),
            sessions=sessions,
            authenticator=Authenticator(sessions, TokenTable(config.auth.tokens)),
            stream=stream,
            metrics=HallMetrics(runtime, stream),
            devices=Registry([DeviceSpec(**asdict(entry)) for entry in config.devices]),
            priority=PriorityGate(config.priority_groups),
            appointments=AppointmentDesk(pool, vault, citizens, runtime, config.appointments),
            time_nodes=TimeNodes(runtime, pool, config.time_limits),
            signage=SignageHub(SignageStore(pool, hall_id), runtime),
            notifications=Notifications(config, runtime, pool, citizens, vault,
                                        notify_listener),
            stats=Statistics(runtime, pool),
        )

    async def start(self) -> None:
        await self.staff.seed(self.config.auth.staff)
        await self.runtime.start()
        await self.stats.start()
        await self.time_nodes.start()
        await self.notifications.start(self.metrics.registry)

    async def stop(self) -> None:
        await self.stats.stop()
        await self.notifications.stop()
        self.time_nodes.stop()
        await self.runtime.stop()


SERVER = web.AppKey("server", HallServer)
