"""The hall's devices as the server knows them: which may take part, which are
online, and which need a person (paper, cover, faults), for Q14 and the status
wall (W2).

Pure and synchronous, like the queueing engine: no I/O and no clock. The
caller (the server's MQTT side) passes ``now`` and publishes the returned
DeviceChange list as events, which feed the status wall and ``/metrics``. Only
real changes come back, so a device that repeats its state every few seconds
causes no traffic downstream.

Known devices come from the configuration: the server turns each
``[[devices]]`` entry into a DeviceSpec. An id that shows up without one is
kept as a quarantined device rather than dropped, so that a manager sees it on
the wall and can approve it; until then is_allowed() says no and the server
gives it nothing to do. The registry lives in memory: to keep approvals across
a restart the server stores its ``device.approved`` events and calls approve()
again at start-up, which works before the device has connected.

Health (paper, cover, error codes) is kept per device id, for whichever device
reports it. A kiosk with a built-in ticket printer reports that printer's
paper and cover in its own state, under the kiosk's id; a stand-alone printer
reports under its own id. So paper out on a kiosk means its built-in printer.
A kiosk configured with a ``printer`` prints there instead (``printer_of``),
and ``PrintJobs`` follows the jobs sent to such printers, so that a job whose
printer dies is reported to its kiosk within seconds rather than never.

This module must never import ``hall``: the edge agent on a kiosk PC runs
``devices`` without the server.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, get_args

from devices.topics import DeviceKind

Paper = Literal["ok", "near_end", "out"]
Cover = Literal["closed", "open"]
ChangeType = Literal[
    "device.online",
    "device.offline",
    "device.health_changed",
    "device.quarantined",
    "device.approved",
    "device.version_changed",
]
AlertProblem = Literal[
    "offline", "paper_near_end", "paper_out", "cover_open", "errors", "kind_mismatch", "quarantined"
]

PrintProblem = Literal["offline", "paper_out", "cover_open"]

PRINTER_FAULTS = frozenset({"printer_offline", "offline", "cutter", "unrecoverable"})
"""Health errors after which a ticket printer prints nothing (docs/mqtt.md, "Printer"):
the edge agent's ``printer_offline`` and the ESC/POS real-time status faults."""
"""Why a kiosk's printer cannot print a ticket now."""
LostReason = Literal["printer_offline", "timeout"]

_PAPER: tuple[str, ...] = get_args(Paper)
_COVER: tuple[str, ...] = get_args(Cover)
_PAPER_ALERTS: dict[str, AlertProblem] = {"near_end": "paper_near_end", "out": "paper_out"}


class AlreadyAllowed(ValueError):
    """approve() for a device that needs no approval: it is in the
    configuration or was approved already."""


@dataclass(frozen=True, slots=True)
class DeviceSpec:
    """What the hall knows about a device before it connects."""

    id: str
    kind: DeviceKind
    name: str
    area: str | None = None
    window: str | None = None
    """The calling position it serves, for window devices (call terminal,
    evaluation terminal, a window's own screen)."""
    screen: str | None = None
    """For a window screen: the screen id it shows (``Window.screen_id``), which
    two positions may share; None for other kinds."""
    password_sha256: str = ""
    """Hex SHA-256 of its MQTT password. The broker checks passwords; the
    registry only keeps the hash for it. Empty when none is configured."""
    printer: str | None = None
    """For a kiosk without a built-in printer: the stand-alone printer that
    prints its tickets. None means the kiosk prints itself."""


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One device as last heard of. Immutable: the registry replaces it on
    every change, so a status handed out never changes under its holder."""

    id: str
    spec: DeviceSpec | None
    """None while the device is unknown (quarantined)."""
    online: bool = False
    since: datetime | None = None
    """When ``online`` last changed; None if it has not since the start."""
    last_seen: datetime | None = None
    """The last message from the device itself, of any kind."""
    paper: Paper = "ok"
    cover: Cover = "closed"
    errors: tuple[str, ...] = ()
    """Fault codes as the device reports them, sorted, without repeats."""
    health_since: datetime | None = None
    """When paper, cover or errors last changed."""
    firmware: str = ""
    config_version: str = ""
    reported_kind: DeviceKind | None = None
    """The kind the device says it is when it comes online."""
    quarantined: bool = False
    approved_by: str | None = None
    """The manager who approved it; None for a device from the configuration."""

    @property
    def kind(self) -> DeviceKind | None:
        """The configured kind, or, for an unknown device, the one it reports."""
        return self.spec.kind if self.spec is not None else self.reported_kind

    @property
    def allowed(self) -> bool:
        return self.spec is not None


@dataclass(frozen=True, slots=True)
class DeviceChange:
    """A change worth telling the status wall and metrics about."""

    type: ChangeType
    device_id: str
    at: datetime
    detail: dict[str, object] = field(default_factory=dict)
    """JSON-ready: strings, numbers, lists, None."""


@dataclass(frozen=True, slots=True)
class Alert:
    """Something on the status wall that needs a person (W2)."""

    device_id: str
    problem: AlertProblem
    kind: DeviceKind | None
    area: str | None
    window: str | None
    since: datetime | None
    """When the problem began, as far as the registry knows."""
    detail: str = ""
    """The error codes, or the kind a mismatched device reports."""


class Registry:
    """Known, approved and quarantined devices, in configuration order and then
    in order of arrival."""

    def __init__(self, specs: Iterable[DeviceSpec]) -> None:
        self._devices: dict[str, DeviceStatus] = {}
        self.spec_version = 0
        """Counts the changes of what devices are (one added, one approved): what is
        built from the specs, such as which screens show what, is rebuilt only then."""
        for spec in specs:
            if spec.id in self._devices:
                raise ValueError(f"device {spec.id!r} is listed twice")
            self._devices[spec.id] = DeviceStatus(spec.id, spec)

    # --- What devices report ----------------------------------------------------

    def seen(self, device_id: str, now: datetime) -> list[DeviceChange]:
        """Any message from the device: it was alive at ``now``. Not a change
        worth an event for a known device; an unknown one is quarantined, once."""
        status = self._devices.get(device_id)
        if status is None:
            self._devices[device_id] = DeviceStatus(
                device_id, None, last_seen=now, quarantined=True
            )
            self.spec_version += 1
            return [DeviceChange("device.quarantined", device_id, now)]
        if status.last_seen is None or now > status.last_seen:
            self._devices[device_id] = replace(status, last_seen=now)
        return []

    def came_online(
        self,
        device_id: str,
        kind: DeviceKind,
        firmware: str,
        config_version: str,
        now: datetime,
    ) -> list[DeviceChange]:
        """The device announced itself. Also for one that reports new versions
        while online (after applying a new configuration): then only the
        version change comes back. A version is a change only when an earlier
        one was known, so the first announcement after a server start is not."""
        changes = self.seen(device_id, now)
        status = self._devices[device_id]
        if not status.online:
            changes.append(
                DeviceChange(
                    "device.online",
                    device_id,
                    now,
                    {
                        "kind": str(kind),
                        "firmware": firmware,
                        "config_version": config_version,
                        "quarantined": status.quarantined,
                    },
                )
            )
        before = {"firmware": status.firmware, "config_version": status.config_version}
        after = {"firmware": firmware, "config_version": config_version}
        if any(before[name] and before[name] != after[name] for name in before):
            changes.append(
                DeviceChange(
                    "device.version_changed", device_id, now, {**after, "previous": before}
                )
            )
        self._devices[device_id] = replace(
            status,
            online=True,
            since=status.since if status.online else now,
            firmware=firmware,
            config_version=config_version,
            reported_kind=kind,
        )
        return changes

    def went_offline(self, device_id: str, now: datetime) -> list[DeviceChange]:
        """The connection is gone (the broker's last will, or a missed
        heartbeat). Not a message from the device, so last_seen stays."""
        status = self._devices.get(device_id)
        if status is None or not status.online:
            return []
        self._devices[device_id] = replace(status, online=False, since=now)
        last_seen = status.last_seen.isoformat() if status.last_seen is not None else None
        return [DeviceChange("device.offline", device_id, now, {"last_seen": last_seen})]

    def health(
        self,
        device_id: str,
        paper: Paper,
        cover: Cover,
        errors: Iterable[str],
        now: datetime,
    ) -> list[DeviceChange]:
        """The device's own health, or that of the printer built into it (see
        the module docstring). Errors are a set of codes: their order is not a
        change."""
        if paper not in _PAPER:
            raise ValueError(f"paper must be one of {_PAPER}, not {paper!r}")
        if cover not in _COVER:
            raise ValueError(f"cover must be one of {_COVER}, not {cover!r}")
        codes = tuple(sorted(set(errors)))
        changes = self.seen(device_id, now)
        status = self._devices[device_id]
        if (paper, cover, codes) == (status.paper, status.cover, status.errors):
            return changes
        changes.append(
            DeviceChange(
                "device.health_changed",
                device_id,
                now,
                {
                    "paper": paper,
                    "cover": cover,
                    "errors": list(codes),
                    "previous": {
                        "paper": status.paper,
                        "cover": status.cover,
                        "errors": list(status.errors),
                    },
                },
            )
        )
        self._devices[device_id] = replace(
            status, paper=paper, cover=cover, errors=codes, health_since=now
        )
        return changes

    # --- What managers decide ---------------------------------------------------

    def approve(
        self, device_id: str, spec: DeviceSpec, by: str, now: datetime
    ) -> list[DeviceChange]:
        """A manager lets a quarantined device take part, saying what it is and
        where. Also for an id not seen yet, so that the server can replay stored
        approvals at start-up; raises AlreadyAllowed for a device that is."""
        if spec.id != device_id:
            raise ValueError(f"the spec is for {spec.id!r}, not {device_id!r}")
        status = self._devices.get(device_id)
        if status is not None and status.allowed:
            raise AlreadyAllowed(f"device {device_id!r} needs no approval")
        if status is None:
            status = DeviceStatus(device_id, None)
        self._devices[device_id] = replace(status, spec=spec, quarantined=False, approved_by=by)
        self.spec_version += 1
        return [
            DeviceChange(
                "device.approved",
                device_id,
                now,
                {
                    "by": by,
                    "kind": str(spec.kind),
                    "name": spec.name,
                    "area": spec.area,
                    "window": spec.window,
                    "screen": spec.screen,
                },
            )
        ]

    # --- Queries ----------------------------------------------------------------

    def is_allowed(self, device_id: str) -> bool:
        """Configured or approved; False for quarantined and never-seen ids."""
        status = self._devices.get(device_id)
        return status is not None and status.allowed

    def status(self, device_id: str) -> DeviceStatus | None:
        return self._devices.get(device_id)

    def all(self) -> list[DeviceStatus]:
        """Every device, quarantined ones included."""
        return list(self._devices.values())

    def by_window(self, window_id: str) -> list[DeviceStatus]:
        """Devices configured for the position. A screen shared by two
        positions names no window: find it with by_screen(Window.screen_id)."""
        return [status for status, spec in self._allowed() if spec.window == window_id]

    def by_screen(self, screen_id: str) -> list[DeviceStatus]:
        return [status for status, spec in self._allowed() if spec.screen == screen_id]

    def by_kind(self, kind: DeviceKind) -> list[DeviceStatus]:
        """Allowed devices only: the server uses this to address devices, and a
        quarantined one gets nothing."""
        return [status for status, spec in self._allowed() if spec.kind is kind]

    def printer_of(self, kiosk_id: str) -> DeviceStatus | None:
        """The device that prints the kiosk's tickets: its stand-alone printer when
        the configuration names one, else the kiosk itself (built in)."""
        status = self._devices.get(kiosk_id)
        if status is None or status.spec is None or status.spec.printer is None:
            return status
        return self._devices.get(status.spec.printer)

    def print_problem(self, kiosk_id: str) -> PrintProblem | None:
        """Why a ticket taken at the kiosk could not be printed now, or None.

        A built-in printer is as online as its kiosk, which is asking; a stand-alone
        one must be online itself. Either stops for paper out, an open cover, or a
        fault in ``PRINTER_FAULTS`` (an edge agent that cannot reach the printer
        inside its kiosk reports ``printer_offline``)."""
        printer = self.printer_of(kiosk_id)
        if printer is None:
            return "offline" if kiosk_id in self._devices else None
        if printer.id != kiosk_id and not printer.online:
            return "offline"
        if printer.paper == "out":
            return "paper_out"
        if printer.cover == "open":
            return "cover_open"
        if PRINTER_FAULTS.intersection(printer.errors):
            return "offline"
        return None

    def online_counts(self) -> dict[DeviceKind, int]:
        """Allowed devices online, with every kind present (0 when none), so a
        metric drops to zero instead of vanishing. Quarantined devices do not
        count: a stray device must not make the hall look better equipped."""
        counts = dict.fromkeys(DeviceKind, 0)
        for status, spec in self._allowed():
            counts[spec.kind] += status.online
        return counts

    def alerts(self) -> list[Alert]:
        """What needs a person, device by device. A known device that has not
        connected since the server started counts as offline. Health alerts
        stay while a device is offline: they show its last report, and paper
        that ran out does not come back by itself."""
        alerts: list[Alert] = []
        for status in self._devices.values():
            alerts.extend(_alerts_of(status))
        return alerts

    def _allowed(self) -> Iterator[tuple[DeviceStatus, DeviceSpec]]:
        for status in self._devices.values():
            if status.spec is not None:
                yield status, status.spec


def _alerts_of(status: DeviceStatus) -> list[Alert]:
    spec = status.spec
    if spec is None:
        if not status.online:
            return []
        return [Alert(status.id, "quarantined", status.kind, None, None, status.since)]

    def alert(problem: AlertProblem, since: datetime | None, detail: str = "") -> Alert:
        return Alert(status.id, problem, spec.kind, spec.area, spec.window, since, detail)

    alerts: list[Alert] = []
    if not status.online:
        alerts.append(alert("offline", status.since))
    elif status.reported_kind is not None and status.reported_kind is not spec.kind:
        alerts.append(alert("kind_mismatch", status.since, str(status.reported_kind)))
    if status.paper in _PAPER_ALERTS:
        alerts.append(alert(_PAPER_ALERTS[status.paper], status.health_since))
    if status.cover == "open":
        alerts.append(alert("cover_open", status.health_since))
    if status.errors:
        alerts.append(alert("errors", status.health_since, ", ".join(status.errors)))
    return alerts


@dataclass(frozen=True, slots=True)
class PendingPrint:
    """A ticket sent to a kiosk's stand-alone printer and not yet answered."""

    id: str
    """The ``printer.print`` command's id: the kiosk's ``kiosk.take_ticket`` id."""
    kiosk: str
    printer: str
    ticket_id: str
    number: str
    deadline: float


class PrintJobs:
    """Jobs out at stand-alone printers, to tell their kiosk when one is lost.

    Pure, like the registry: ``now`` is any monotonic clock in seconds, passed by
    the caller. A job ends when its printer answers (``answered``) or is lost
    (``lost``): its printer went offline, or gave no answer by its deadline."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._jobs: dict[str, PendingPrint] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def sent(
        self, job_id: str, kiosk: str, printer: str, ticket_id: str, number: str, now: float
    ) -> PendingPrint:
        job = PendingPrint(job_id, kiosk, printer, ticket_id, number, now + self.timeout)
        self._jobs[job_id] = job
        return job

    def answered(self, job_id: str, printer: str) -> PendingPrint | None:
        """The job the printer answered, ended; None for a job it was not sent (a
        repeated answer, or another device's)."""
        job = self._jobs.get(job_id)
        if job is None or job.printer != printer:
            return None
        return self._jobs.pop(job_id)

    def lost(self, registry: Registry, now: float) -> list[tuple[PendingPrint, LostReason]]:
        """The jobs that will not print, ended: their printer is offline, or their
        deadline passed."""
        lost: list[tuple[PendingPrint, LostReason]] = []
        for job in list(self._jobs.values()):
            printer = registry.status(job.printer)
            if printer is None or not printer.online:
                lost.append((job, "printer_offline"))
            elif now >= job.deadline:
                lost.append((job, "timeout"))
            else:
                continue
            del self._jobs[job.id]
        return lost
