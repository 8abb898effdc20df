"""One hall server, assembled: everything a request handler may need, built
once from the configuration and a database pool, started and stopped as one."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import asyncpg
from aiohttp import web

from devices.registry import DeviceSpec, Registry
from hall.audit import AuditLog
from hall.auth import Authenticator, SessionStore, StaffStore, TokenTable
from hall.backend import BackendStore
from hall.bus import EventBus
from hall.citizens import CitizenStore
from hall.clock import Clock
from hall.config import HallConfig
from hall.metrics import HallMetrics
from hall.pii import DataKey, Vault
from hall.priority import PriorityGate
from hall.runtime import HallRuntime
from hall.stream import EventStream


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

    @classmethod
    def assemble(
        cls, config: HallConfig, pool: asyncpg.Pool, clock: Clock, data_key: DataKey
    ) -> HallServer:
        hall_id = config.layout.hall_id
        runtime = HallRuntime(config, clock, EventBus(), pool)
        sessions = SessionStore(pool, config.auth.session_ttl)
        citizens = CitizenStore(pool, Vault(data_key), hall_id)
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
        )

    async def start(self) -> None:
        await self.staff.seed(self.config.auth.staff)
        await self.runtime.start()

    async def stop(self) -> None:
        await self.runtime.stop()


SERVER = web.AppKey("server", HallServer)
