"""The hall as configured: areas, services, packages, windows and policies.

Everything here is immutable. What changes while the hall runs (who is logged
in, which strategy a window uses, which services it takes) lives in the
engine's state and changes only through events, so that replaying the events
over the same layout rebuilds the same hall.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from queueing.hours import ALWAYS, Hours
from queueing.strategies import DEFAULT_STRATEGY, StrategySpec


class LayoutError(ValueError):
    """The layout contradicts itself (an unknown reference, a duplicate id)."""


@dataclass(frozen=True, slots=True)
class Area:
    """A region on a floor (一楼A区); the status wall groups windows by it."""

    id: str
    name: str
    floor: int
    region: str = ""


@dataclass(frozen=True, slots=True)
class Service:
    """A service item (事项) a citizen can take a ticket for."""

    id: str
    name: str
    category: str
    prefix: str
    hours: Hours = ALWAYS
    daily_quota: int | None = None
    avg_service_minutes: float = 10.0
    """Seed for the waiting estimate until real service times come in."""


@dataclass(frozen=True, slots=True)
class Package:
    """A visit covering several services in order (套餐): one ticket for all."""

    id: str
    name: str
    prefix: str
    services: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Window:
    """One calling position.

    Two positions that share a physical window screen (一屏双号) are two
    windows with the same ``screen``; each calls on its own.
    """

    id: str
    name: str
    area: str
    services: Mapping[str, int]
    """Service id → weight (≥ 1): the weighted and priority strategies use it."""
    screen: str = ""
    """Physical screen this position shows on; empty means its own."""
    groups: tuple[str, ...] = ()
    """Named window groups a manager can set a strategy for at once."""
    hours: Hours | None = None
    """Working hours for attendance; None means the hall's."""

    @property
    def screen_id(self) -> str:
        return self.screen or self.id


@dataclass(frozen=True, slots=True)
class PauseReason:
    """Why a window pauses, how long that may last, and what its screen says."""

    code: str
    label: str
    limit_minutes: float
    message: str


@dataclass(frozen=True, slots=True)
class NoShowPolicy:
    """A skipped ticket goes back behind ``requeue_behind`` people, at most
    ``max_requeues`` times; the next skip abandons it."""

    requeue_behind: int = 3
    max_requeues: int = 1


@dataclass(frozen=True, slots=True)
class AttendancePolicy:
    login_grace_minutes: float = 10.0
    """A window still not logged in this long after opening is late."""


DEFAULT_PAUSE_REASONS: Mapping[str, PauseReason] = {
    "break": PauseReason("break", "休息", 15, "工作人员暂时离开，请稍候"),
}


@dataclass(frozen=True, slots=True)
class Layout:
    hall_id: str
    name: str
    areas: Mapping[str, Area]
    services: Mapping[str, Service]
    windows: Mapping[str, Window]
    packages: Mapping[str, Package] = field(default_factory=dict)
    pause_reasons: Mapping[str, PauseReason] = field(
        default_factory=lambda: dict(DEFAULT_PAUSE_REASONS)
    )
    working_hours: Hours = ALWAYS
    no_show: NoShowPolicy = NoShowPolicy()
    attendance: AttendancePolicy = AttendancePolicy()
    default_strategy: StrategySpec = DEFAULT_STRATEGY
    number_width: int = 3
    ewma_alpha: float = 0.2
    """Weight of the newest service time in the running average."""

    def __post_init__(self) -> None:
        filed: list[tuple[str, str]] = [
            *((key, area.id) for key, area in self.areas.items()),
            *((key, service.id) for key, service in self.services.items()),
            *((key, window.id) for key, window in self.windows.items()),
            *((key, package.id) for key, package in self.packages.items()),
            *((key, reason.code) for key, reason in self.pause_reasons.items()),
        ]
        for key, item_id in filed:
            if key != item_id:
                raise LayoutError(f"{item_id!r} is filed under the key {key!r}")
        taken = self.services.keys() & self.packages.keys()
        if taken:
            raise LayoutError(f"ids used by both a service and a package: {sorted(taken)}")
        for window in self.windows.values():
            if window.area not in self.areas:
                raise LayoutError(f"window {window.id!r}: unknown area {window.area!r}")
            if not window.services:
                raise LayoutError(f"window {window.id!r} serves no service")
            for service_id, weight in window.services.items():
                if service_id not in self.services:
                    raise LayoutError(f"window {window.id!r}: unknown service {service_id!r}")
                if weight < 1:
                    raise LayoutError(f"window {window.id!r}: weight of {service_id!r} below 1")
        for package in self.packages.values():
            if len(package.services) < 2:
                raise LayoutError(f"package {package.id!r} needs at least two services")
            for service_id in package.services:
                if service_id not in self.services:
                    raise LayoutError(f"package {package.id!r}: unknown service {service_id!r}")
        for service in self.services.values():
            if not service.prefix or not service.prefix.isalnum():
                raise LayoutError(f"service {service.id!r}: prefix must be letters or digits")
            if service.daily_quota is not None and service.daily_quota < 0:
                raise LayoutError(f"service {service.id!r}: negative daily quota")
            if service.avg_service_minutes <= 0:
                raise LayoutError(f"service {service.id!r}: average service time must be > 0")
        if self.no_show.requeue_behind < 0 or self.no_show.max_requeues < 0:
            raise LayoutError("no-show policy numbers must be ≥ 0")
        if not 0 < self.ewma_alpha <= 1:
            raise LayoutError("ewma_alpha must be in (0, 1]")

    def window_hours(self, window: Window) -> Hours:
        return window.hours if window.hours is not None else self.working_hours

    def services_of(self, service_or_package: str) -> tuple[str, ...] | None:
        """The services a ticket for this id covers, or None when unknown."""
        if service_or_package in self.services:
            return (service_or_package,)
        package = self.packages.get(service_or_package)
        return package.services if package is not None else None

    def prefix_of(self, service_or_package: str) -> str:
        package = self.packages.get(service_or_package)
        return package.prefix if package is not None else self.services[service_or_package].prefix
