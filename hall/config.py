"""The hall's TOML configuration, checked and turned into the engine's Layout.

A hall manager edits this file by hand, so a mistake must come back as the
file, the key path and what is wrong (``hall.toml: windows[3].area: unknown
area 'f9-a'``), every mistake at once, instead of as a traceback from a server
that will not start. Loading runs in four steps, each its own function: read
the TOML, validate its shape (pydantic), cross-check the references between
tables, build the engine's immutable types. The engine never sees TOML or
pydantic; this module is the only place that knows the file's shape.

Array indexes in key paths count from 0, in the order the tables appear in the
file (``windows[0]`` is the first ``[[windows]]``).

The optional ``[auth]`` table (G3) holds no secret: bearer tokens for the
backend and devices appear only as their SHA-256, and the staff accounts it
seeds at start-up only as argon2 hashes, so the file can be read, copied and
versioned like any other. Its optional ``[auth.oidc]`` table, for halls whose
staff log in through a unified OpenID Connect provider, names the environment
variable that holds the client secret, never the secret itself.

The optional ``[[devices]]`` tables list the hall's known devices: kiosks,
call terminals, screens and the rest. A device not listed is quarantined when
it connects until a manager approves it (devices/registry.py). Each entry
holds its MQTT password only as SHA-256, like the tokens above; the broker
checks the password, the hall only needs to recognise it.

The optional ``[[priority_groups]]`` tables name the groups that take a
priority ticket with a password (Q2: the elderly, the disabled, service
members...). Their passwords are short and typed by people, so they appear
only as argon2 hashes, like staff passwords (see hall/priority.py).

Ticket texts (Q3) usually sit on their service or package. A ``[tickets.<id>]``
table may give them instead, for halls whose catalog is synced from the
backend (Q9) while the ticket wording stays the hall's own.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal, NamedTuple, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from argon2 import extract_parameters
from argon2.exceptions import InvalidHashError
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
)
from pydantic_core import ErrorDetails

from devices.topics import DeviceKind
from hall import appointment_config
from hall.appointment_config import AppointmentConfig, AppointmentsTable
from hall.notify import settings as notify_settings
from queueing.hours import WORKDAYS, Hours, parse_interval
from queueing.layout import (
    DEFAULT_PAUSE_REASONS,
    Area,
    AttendancePolicy,
    Layout,
    LayoutError,
    NoShowPolicy,
    Package,
    PauseReason,
    Service,
    Window,
)
from queueing.strategies import DEFAULT_STRATEGY, StrategySpec

DEFAULT_TIMEZONE = "Asia/Shanghai"

Scope = Literal["group", "area", "window"]


class Problem(NamedTuple):
    key: str
    """Where, in TOML notation (``services[12].prefix``); empty for the whole file."""
    text: str


class ConfigError(ValueError):
    """The configuration cannot be used; the message has one line per problem."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(_format(source, problem) for problem in self.problems))


def _format(source: str, problem: Problem) -> str:
    where = f"{source}: {problem.key}" if problem.key else source
    return f"{where}: {problem.text}"


@dataclass(frozen=True, slots=True)
class TicketText:
    """What a printed ticket tells the citizen besides the number (Q3)."""

    direction: str = ""
    """Where to go, e.g. 请到二楼B区 12-15 号窗口."""
    materials: tuple[str, ...] = ()
    notice: str = ""
    """A notice or publicity line printed at the bottom."""


@dataclass(frozen=True, slots=True)
class StrategyAssignment:
    """A calling strategy for an area, a window group or one window (Q7).

    The loader only checks it: the server applies it through the engine at
    start-up, so that the manager can later change it live like any other
    strategy and the change is in the event log.
    """

    scope: Scope
    target: str
    spec: StrategySpec


TokenRole = Literal["backend", "device"]
StaffRole = Literal["admin", "manager", "staff"]


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """A bearer token of the approval backend or of a device (G3)."""

    name: str
    """Who presents the token; the id that audit records show."""
    role: TokenRole
    token_sha256: str
    """Lower-case hex SHA-256 of the token: the file never holds the token itself."""


@dataclass(frozen=True, slots=True)
class StaffEntry:
    """A staff account to create at start-up when the database lacks it."""

    id: str
    name: str
    role: StaffRole
    password_hash: str
    """An argon2 hash; the clear password is never in the file."""


DEFAULT_OIDC_SCOPES = ("openid", "profile")


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """Staff login through an OpenID Connect provider (``[auth.oidc]``)."""

    issuer: str
    """The provider's issuer URL; discovery is read from below it."""
    client_id: str
    client_secret_env: str
    """Name of the environment variable holding the client secret: the secret
    stays out of the file, which is versioned and copied around."""
    redirect_url: str
    """Where the provider sends the browser back: the hall's callback, or a
    console page that passes the query string on to it."""
    scopes: tuple[str, ...] = DEFAULT_OIDC_SCOPES
    staff_claim: str = "sub"
    """The ID token claim matched against ``staff.oidc_subject``: one that the
    provider assigns, never one its users can edit (a display name, an email)."""
    role_claim: str | None = None
    """When set, the ID token claim whose value becomes the staff member's role."""


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Authentication settings; the defaults let a hall run with no ``[auth]``."""

    session_hours: float = 12.0
    tokens: tuple[TokenEntry, ...] = ()
    staff: tuple[StaffEntry, ...] = ()
    oidc: OidcConfig | None = None

    @property
    def session_ttl(self) -> timedelta:
        return timedelta(hours=self.session_hours)


@dataclass(frozen=True, slots=True)
class PriorityGroup:
    """A group that may take a priority ticket with its password (Q2)."""

    id: str
    name: str
    """What the kiosk shows, e.g. 老年人 (70 岁以上)."""
    password_hash: str
    """An argon2 hash of the group's password; the clear password is never in the file."""


WINDOW_DEVICE_KINDS = frozenset({DeviceKind.CALL_TERMINAL, DeviceKind.EVALUATION_TERMINAL})
"""Kinds that belong to one calling position and mean nothing without it."""


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """A known device (``[[devices]]``). The same fields as devices.registry's
    DeviceSpec, which the server builds from it: like every type here, it is
    what the file says once checked, and the registry knows nothing of files."""

    id: str
    kind: DeviceKind
    name: str
    area: str | None = None
    """As written, or else the area of its window (or of the windows on its
    screen, when they all share one), so the status wall can place it."""
    window: str | None = None
    screen: str | None = None
    """For a window screen, always set: the screen id it shows, as written or
    else its window's (``Window.screen_id``); None for every other kind."""
    password_sha256: str = ""
    """Lower-case hex SHA-256 of the device's MQTT password."""
    printer: str | None = None
    """For a kiosk whose tickets come out of a stand-alone printer: that
    printer's device id. None for a kiosk with its printer built in, and for
    every other kind."""


@dataclass(frozen=True, slots=True)
class TimeLimit:
    """How long a ticket may wait and be served before the status wall is
    alerted (D12, W2); None is no limit."""

    max_wait_minutes: float | None = None
    max_service_minutes: float | None = None


@dataclass(frozen=True, slots=True)
class TimeLimits:
    """``[[time_limits]]``: an entry without ``service`` is the default; a
    service's own entry takes what it leaves out from the default. With no
    entry at all no time-limit alert is raised."""

    default: TimeLimit = TimeLimit()
    services: Mapping[str, TimeLimit] = field(default_factory=lambda: MappingProxyType({}))

    def of(self, service_id: str) -> TimeLimit:
        return self.services.get(service_id, self.default)


@dataclass(frozen=True, slots=True)
class HallConfig:
    """The engine's layout plus what the engine has no business knowing: local
    time, network, storage and the wording printed on tickets."""

    layout: Layout
    tickets: Mapping[str, TicketText]
    """Text for every service and package id (empty text when none is set)."""
    strategy_assignments: tuple[StrategyAssignment, ...] = ()
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    rollover_hour: int = 3
    """Local hour at which the business day turns over and ticket numbers restart;
    in the small hours, so that no open hall is ever split across two days."""
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    database_url: str | None = None
    auth: AuthConfig = field(default_factory=AuthConfig)
    devices: tuple[DeviceEntry, ...] = ()
    priority_groups: Mapping[str, PriorityGroup] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """By id, in the order of the file."""
    appointments: AppointmentConfig = field(default_factory=AppointmentConfig)
    """Bookable slots, the late and missed policy, the mobile page's limits (Q1, M1)."""
    time_limits: TimeLimits = field(default_factory=TimeLimits)
    notifications: notify_settings.NotificationsConfig = field(
        default_factory=notify_settings.NotificationsConfig)
    """Citizen notifications (Q6, Q11, D11): gateways, rules, per-service choices."""


def load_hall_config(path: str | Path) -> HallConfig:
    """Read, check and build the hall configuration; raises ConfigError."""
    source = str(path)
    return parse_hall_config(_read_toml(Path(path), source), source)


def parse_hall_config(data: Mapping[str, object], source: str = "<config>") -> HallConfig:
    """Check and build a configuration already parsed from TOML (or equivalent
    JSON); ``source`` names it in error messages."""
    try:
        hall = _HallFile.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(source, _problems_of(exc)) from None
    problems = list(_cross_check(hall))
    if problems:
        raise ConfigError(source, problems)
    try:
        layout = _layout(hall)
    except LayoutError as exc:
        raise ConfigError(source, [Problem("", str(exc))]) from exc
    return HallConfig(
        layout=layout,
        tickets=_tickets(hall),
        strategy_assignments=tuple(
            StrategyAssignment(item.scope, item.target, item.rules)
            for item in hall.strategies.assign
        ),
        timezone=hall.hall.timezone,
        rollover_hour=hall.hall.rollover_hour,
        http_host=hall.http.host,
        http_port=hall.http.port,
        database_url=hall.database.url if hall.database is not None else None,
        auth=_auth(hall.auth),
        devices=_devices(hall),
        priority_groups=MappingProxyType({
            item.id: PriorityGroup(item.id, item.name, item.password_hash)
            for item in hall.priority_groups
        }),
        appointments=appointment_config.build(hall.appointments, layout),
        time_limits=_time_limits(hall),
        notifications=notify_settings.build(hall.notifications),
    )


# --- Reading -----------------------------------------------------------------

_TOML_WHERE = re.compile(r"^(?P<what>.*) \(at (?P<where>line \d+, column \d+|end of document)\)$")


def _read_toml(path: Path, source: str) -> dict[str, object]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(source, [Problem("", f"cannot read: {exc.strerror or exc}")]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [_syntax_problem(exc)]) from None


def _syntax_problem(error: tomllib.TOMLDecodeError) -> Problem:
    """tomllib (before 3.14) puts the position only into the message text."""
    match = _TOML_WHERE.match(str(error))
    if match is None:
        return Problem("", f"TOML syntax: {error}")
    return Problem(match["where"], f"TOML syntax: {_lower_first(match['what'])}")


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


# --- Shape: one pydantic model per TOML table ---------------------------------

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_PREFIX = re.compile(r"[A-Z]{1,2}")
_SHA256_HEX = re.compile(r"[0-9A-Fa-f]{64}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
_SCOPE = re.compile(r"[\x21\x23-\x5B\x5D-\x7E]+")


def _id(value: str) -> str:
    """Ids end up in URLs, event logs and key paths: keep them plain."""
    if not _ID.fullmatch(value):
        raise ValueError("must be 1-64 letters, digits, '-' or '_', starting with a letter/digit")
    return value


def _prefix(value: str) -> str:
    if not _PREFIX.fullmatch(value):
        raise ValueError("must be 1-2 capital letters")
    return value


def _sha256_hex(value: str) -> str:
    """Lower-cased, so that equal hashes compare equal however they were written."""
    if not _SHA256_HEX.fullmatch(value):
        raise ValueError("must be 64 hex digits: the SHA-256 of the token, not the token")
    return value.lower()


def _password_sha256(value: str) -> str:
    if not _SHA256_HEX.fullmatch(value):
        raise ValueError("must be 64 hex digits: the SHA-256 of the password, not the password")
    return value.lower()


def _device_kind(value: object) -> DeviceKind:
    """Lists the kinds: the manager types them by hand, and pydantic in strict
    mode would only say that a string is not a DeviceKind."""
    if isinstance(value, str) and value in DeviceKind.__members__.values():
        return DeviceKind(value)
    raise ValueError(f"must be one of {', '.join(repr(kind.value) for kind in DeviceKind)}")


def _argon2_hash(value: str) -> str:
    """Refuse anything else early: most likely a clear password pasted by mistake,
    which would then sit in the file and never match at login."""
    if not value.startswith("$argon2"):
        raise ValueError("must be an argon2 hash ('$argon2id$...'), not a clear password")
    try:
        extract_parameters(value)
    except InvalidHashError:
        raise ValueError("is not a well-formed argon2 hash") from None
    return value


def _env_name(value: str) -> str:
    """Capitals only: a name like OIDC_CLIENT_SECRET, which a pasted random
    secret almost never looks like."""
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            "must be the name of an environment variable (capital letters, digits, '_'), "
            "not the secret itself"
        )
    return value


def _no_secret(value: object) -> object:
    raise ValueError(
        "the client secret must not be in the file; put it in an environment variable "
        "and name that in client_secret_env"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _issuer(value: str) -> str:
    """OpenID Connect Discovery: https, no query or fragment. Plain http only
    on this machine, for tests and a provider a developer runs locally, since
    the keys that sign ID tokens are fetched from here."""
    parts = urlsplit(value)
    if not parts.hostname or parts.query or parts.fragment:
        raise ValueError("must be an absolute URL without query or fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and _is_loopback(parts.hostname)):
        return value
    raise ValueError("must be an https URL (plain http only on 127.0.0.1 or localhost)")


def _redirect_url(value: str) -> str:
    """RFC 6749 section 3.1.2: absolute, without fragment."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise ValueError("must be an absolute http(s) URL without fragment")
    return value


def _scope(value: str) -> str:
    if not _SCOPE.fullmatch(value):
        raise ValueError("must be one scope: printable ASCII without spaces, quotes or '\\'")
    return value


def _has_openid(values: list[str]) -> list[str]:
    if "openid" not in values:
        raise ValueError("must include 'openid'")
    return values


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _interval(value: object) -> tuple[time, time]:
    if not isinstance(value, str):
        raise ValueError("must be a string like '09:00-12:00'")
    return parse_interval(value)


def _intervals_fit_together(intervals: list[tuple[time, time]]) -> list[tuple[time, time]]:
    """Let the engine's own Hours judge order and overlap, so both agree."""
    Hours(tuple(intervals), frozenset(range(7)))
    return intervals


def _weekday(value: int) -> int:
    if not 1 <= value <= 7:
        raise ValueError("weekdays are numbered 1 (Monday) to 7 (Sunday)")
    return value


def _weights(value: object) -> object:
    """A list of service ids is shorthand for weight 1 each."""
    if not isinstance(value, list):
        return value
    weights: dict[str, int] = {}
    for item in value:
        if not isinstance(item, str):
            raise ValueError("expected a list of service ids or a table of id = weight")
        if item in weights:
            raise ValueError(f"service {item!r} listed twice")
        weights[item] = 1
    return weights


def _distinct(values: list[str]) -> list[str]:
    repeated = sorted({value for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"{repeated[0]!r} listed twice")
    return values


_Id = Annotated[str, AfterValidator(_id)]
_Prefix = Annotated[str, AfterValidator(_prefix)]
_Text = Annotated[str, AfterValidator(_text)]
_Sha256Hex = Annotated[str, AfterValidator(_sha256_hex)]
_Argon2Hash = Annotated[str, AfterValidator(_argon2_hash)]
_PasswordSha256 = Annotated[str, AfterValidator(_password_sha256)]
_DeviceKind = Annotated[DeviceKind, PlainValidator(_device_kind)]
_EnvName = Annotated[str, AfterValidator(_env_name)]
_Issuer = Annotated[str, AfterValidator(_issuer)]
_RedirectUrl = Annotated[str, AfterValidator(_redirect_url)]
_Scopes = Annotated[
    list[Annotated[str, AfterValidator(_scope)]],
    AfterValidator(_distinct),
    AfterValidator(_has_openid),
]
_Interval = Annotated[tuple[time, time], PlainValidator(_interval)]
_Intervals = Annotated[
    list[_Interval], Field(min_length=1), AfterValidator(_intervals_fit_together)
]
_Weekdays = Annotated[list[Annotated[int, AfterValidator(_weekday)]], Field(min_length=1)]
_Weights = Annotated[
    dict[_Id, Annotated[int, Field(ge=1)]], BeforeValidator(_weights), Field(min_length=1)
]
_Rules = Annotated[StrategySpec, PlainValidator(StrategySpec.from_json)]


class _Table(BaseModel):
    """Strict: TOML is typed already, so a string where a number belongs is a
    mistake to report, and an unknown key is most likely a typo."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _HallTable(_Table):
    id: _Id
    name: _Text
    timezone: ZoneInfo = Field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    rollover_hour: int = Field(default=3, ge=0, le=23)
    working_hours: _Intervals
    weekdays: _Weekdays = Field(default_factory=lambda: [day + 1 for day in sorted(WORKDAYS)])
    number_width: int = Field(default=3, ge=1, le=6)


class _HttpTable(_Table):
    host: _Text = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)


class _DatabaseTable(_Table):
    url: _Text


class _NoShowTable(_Table):
    requeue_behind: int = Field(default=3, ge=0)
    max_requeues: int = Field(default=1, ge=0)


class _AttendanceTable(_Table):
    login_grace_minutes: float = Field(default=10.0, ge=0)


class _EstimateTable(_Table):
    ewma_alpha: float = Field(default=0.2, gt=0, le=1)


class _PolicyTable(_Table):
    no_show: _NoShowTable = Field(default_factory=_NoShowTable)
    attendance: _AttendanceTable = Field(default_factory=_AttendanceTable)
    estimate: _EstimateTable = Field(default_factory=_EstimateTable)


class _PauseReasonTable(_Table):
    code: _Id
    label: _Text
    limit_minutes: float = Field(gt=0)
    message: _Text


class _AreaTable(_Table):
    id: _Id
    name: _Text
    floor: int
    region: str = ""


class _TicketTable(_Table):
    direction: str = ""
    materials: list[_Text] = Field(default_factory=list)
    notice: str = ""

    def gives_text(self) -> bool:
        return bool(self.model_fields_set & {"direction", "materials", "notice"})


class _TicketableTable(_TicketTable):
    """What a citizen can take a ticket for: a service or a package."""

    id: _Id
    name: _Text
    prefix: _Prefix


class _ServiceTable(_TicketableTable):
    category: _Text
    hours: _Intervals | None = None
    weekdays: _Weekdays | None = None
    daily_quota: int | None = Field(default=None, ge=0)
    avg_service_minutes: float = Field(default=10.0, gt=0)


class _PackageTable(_TicketableTable):
    services: Annotated[list[_Id], Field(min_length=2), AfterValidator(_distinct)]


class _WindowTable(_Table):
    id: _Id
    name: _Text
    area: _Id
    services: _Weights
    screen: str = ""
    groups: Annotated[list[_Id], AfterValidator(_distinct)] = Field(default_factory=list)
    hours: _Intervals | None = None
    weekdays: _Weekdays | None = None


class _AssignTable(_Table):
    scope: Scope
    target: str
    rules: _Rules


class _StrategiesTable(_Table):
    default: _Rules = DEFAULT_STRATEGY
    assign: list[_AssignTable] = Field(default_factory=list)


class _TokenTable(_Table):
    name: _Id
    role: TokenRole
    token_sha256: _Sha256Hex


class _StaffTable(_Table):
    id: _Id
    name: _Text
    role: StaffRole
    password_hash: _Argon2Hash


class _OidcTable(_Table):
    issuer: _Issuer
    client_id: _Text
    client_secret_env: _EnvName
    client_secret: Annotated[object, PlainValidator(_no_secret)] = None
    """Never accepted: present only to say so in words a hall manager follows."""
    redirect_url: _RedirectUrl
    scopes: _Scopes = Field(default_factory=lambda: list(DEFAULT_OIDC_SCOPES))
    staff_claim: _Text = "sub"
    role_claim: _Text | None = None


class _AuthTable(_Table):
    session_hours: float = Field(default=12.0, gt=0, le=24 * 7)
    tokens: list[_TokenTable] = Field(default_factory=list)
    staff: list[_StaffTable] = Field(default_factory=list)
    oidc: _OidcTable | None = None


class _DeviceTable(_Table):
    id: _Id
    kind: _DeviceKind
    name: _Text
    area: _Id | None = None
    window: _Id | None = None
    screen: _Text | None = None
    password_sha256: _PasswordSha256
    printer: _Id | None = None


class _PriorityGroupTable(_Table):
    id: _Id
    name: _Text
    password_hash: _Argon2Hash


class _TimeLimitTable(_Table):
    service: _Id | None = None
    max_wait_minutes: float | None = Field(default=None, gt=0)
    max_service_minutes: float | None = Field(default=None, gt=0)


class _HallFile(_Table):
    hall: _HallTable
    http: _HttpTable = Field(default_factory=_HttpTable)
    database: _DatabaseTable | None = None
    policy: _PolicyTable = Field(default_factory=_PolicyTable)
    pause_reasons: list[_PauseReasonTable] | None = Field(default=None, min_length=1)
    areas: list[_AreaTable] = Field(min_length=1)
    services: list[_ServiceTable] = Field(min_length=1)
    packages: list[_PackageTable] = Field(default_factory=list)
    windows: list[_WindowTable] = Field(min_length=1)
    tickets: dict[_Id, _TicketTable] = Field(default_factory=dict)
    strategies: _StrategiesTable = Field(default_factory=_StrategiesTable)
    auth: _AuthTable = Field(default_factory=_AuthTable)
    devices: list[_DeviceTable] = Field(default_factory=list)
    priority_groups: list[_PriorityGroupTable] = Field(default_factory=list)
    appointments: AppointmentsTable = Field(default_factory=AppointmentsTable)
    time_limits: list[_TimeLimitTable] = Field(default_factory=list)
    notifications: notify_settings.NotificationsTable | None = None


def _all_keys(annotation: object) -> Iterator[str]:
    """Every key of every table, for "did you mean" hints on a typo."""
    if get_origin(annotation) is None and isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            for name, info in annotation.model_fields.items():
                yield name
                yield from _all_keys(info.annotation)
        return
    for argument in get_args(annotation):
        yield from _all_keys(argument)


_KNOWN_KEYS = sorted(set(_all_keys(_HallFile)))


# --- Validation errors as key paths -------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _key_path(loc: Iterable[str | int]) -> str:
    """``("services", 12, "prefix")`` → ``services[12].prefix``, quoting keys
    that TOML would need quoted."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part, ensure_ascii=False)
            path += f".{key}" if path else key
    return path


def _problems_of(error: ValidationError) -> list[Problem]:
    return [Problem(_key_path(item["loc"]), _message(item)) for item in error.errors()]


def _message(item: ErrorDetails) -> str:
    if item["type"] == "extra_forbidden":
        return _unknown_key(str(item["loc"][-1]))
    if item["type"] == "missing":
        return "required key is missing"
    context = item.get("ctx", {})
    if item["type"] == "too_short":
        return f"must list at least {context['min_length']}"
    if item["type"] == "value_error" and "error" in context:
        return str(context["error"])
    return _lower_first(item["msg"])


def _unknown_key(key: str) -> str:
    guess = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
    return f"unknown key; did you mean {guess[0]!r}?" if guess else "unknown key"


# --- Cross-checks between tables ----------------------------------------------


def _cross_check(hall: _HallFile) -> Iterator[Problem]:
    yield from _duplicates("areas", [area.id for area in hall.areas])
    yield from _duplicates("services", [service.id for service in hall.services])
    yield from _duplicates("packages", [package.id for package in hall.packages])
    yield from _duplicates("windows", [window.id for window in hall.windows])
    if hall.pause_reasons is not None:
        yield from _duplicates("pause_reasons", [r.code for r in hall.pause_reasons], "code")
    yield from _package_references(hall)
    yield from _window_references(hall)
    yield from _ticket_references(hall)
    yield from _strategy_targets(hall)
    yield from _auth_duplicates(hall.auth)
    yield from _duplicates("devices", [device.id for device in hall.devices])
    yield from _device_references(hall)
    yield from _duplicates("priority_groups", [group.id for group in hall.priority_groups])
    for key, text in appointment_config.cross_check(
            hall.appointments, [service.id for service in hall.services]):
        yield Problem(key, text)
    yield from _time_limit_references(hall)
    for key, text in notify_settings.problems(
            hall.notifications, [service.id for service in hall.services]):
        yield Problem(key, text)


def _time_limit_references(hall: _HallFile) -> Iterator[Problem]:
    """One default and one entry per service, for services the hall has."""
    services = {service.id for service in hall.services}
    first: dict[str | None, int] = {}
    for index, item in enumerate(hall.time_limits):
        earlier = first.setdefault(item.service, index)
        if item.service is not None and item.service not in services:
            yield Problem(f"time_limits[{index}].service", f"unknown service {item.service!r}")
        elif earlier != index:
            what = "the default" if item.service is None else f"service {item.service!r}"
            yield Problem(f"time_limits[{index}]",
                          f"{what} already has its limits (time_limits[{earlier}])")


def _duplicates(table: str, ids: Sequence[str], key: str = "id") -> Iterator[Problem]:
    first: dict[str, int] = {}
    for index, item_id in enumerate(ids):
        if item_id in first:
            yield Problem(
                f"{table}[{index}].{key}",
                f"duplicate {key} {item_id!r} (first at {table}[{first[item_id]}])",
            )
        else:
            first[item_id] = index


def _package_references(hall: _HallFile) -> Iterator[Problem]:
    services = {service.id for service in hall.services}
    for index, package in enumerate(hall.packages):
        if package.id in services:
            yield Problem(f"packages[{index}].id", f"{package.id!r} is already a service id")
        for service_id in package.services:
            if service_id not in services:
                yield Problem(f"packages[{index}].services", f"unknown service {service_id!r}")


def _window_references(hall: _HallFile) -> Iterator[Problem]:
    areas = {area.id for area in hall.areas}
    services = {service.id for service in hall.services}
    for index, window in enumerate(hall.windows):
        if window.area not in areas:
            yield Problem(f"windows[{index}].area", f"unknown area {window.area!r}")
        for service_id in window.services:
            if service_id not in services:
                yield Problem(f"windows[{index}].services", f"unknown service {service_id!r}")


def _ticket_references(hall: _HallFile) -> Iterator[Problem]:
    tables: tuple[tuple[str, Sequence[_TicketableTable]], ...] = (
        ("services", hall.services),
        ("packages", hall.packages),
    )
    inline = {
        item.id: f"{table}[{index}]"
        for table, items in tables
        for index, item in enumerate(items)
        if item.gives_text()
    }
    known = {service.id for service in hall.services} | {p.id for p in hall.packages}
    for ticket_id in hall.tickets:
        key = _key_path(("tickets", ticket_id))
        if ticket_id not in known:
            yield Problem(key, f"unknown service or package {ticket_id!r}")
        elif ticket_id in inline:
            yield Problem(key, f"ticket text already given in {inline[ticket_id]}")


def _strategy_targets(hall: _HallFile) -> Iterator[Problem]:
    known: dict[Scope, set[str]] = {
        "area": {area.id for area in hall.areas},
        "window": {window.id for window in hall.windows},
        "group": {group for window in hall.windows for group in window.groups},
    }
    unknown: dict[Scope, str] = {
        "area": "unknown area",
        "window": "unknown window",
        "group": "no window is in group",
    }
    first: dict[tuple[Scope, str], int] = {}
    for index, item in enumerate(hall.strategies.assign):
        key = f"strategies.assign[{index}].target"
        earlier = first.setdefault((item.scope, item.target), index)
        if item.target not in known[item.scope]:
            yield Problem(key, f"{unknown[item.scope]} {item.target!r}")
        elif earlier != index:
            yield Problem(
                key,
                f"{item.scope} {item.target!r} already has a strategy "
                f"(strategies.assign[{earlier}])",
            )


def _auth_duplicates(auth: _AuthTable) -> Iterator[Problem]:
    """One token per name and one name per token, or the audit log could not
    tell who presented it."""
    yield from _duplicates("auth.tokens", [token.name for token in auth.tokens], "name")
    yield from _duplicates(
        "auth.tokens", [token.token_sha256 for token in auth.tokens], "token_sha256"
    )
    yield from _duplicates("auth.staff", [member.id for member in auth.staff])


def _device_references(hall: _HallFile) -> Iterator[Problem]:
    """A device placed where the hall has no such place would never be found on
    the status wall, and a window device without its window is useless."""
    areas = {area.id for area in hall.areas}
    windows = {window.id: window for window in hall.windows}
    screens = {_screen_id(window) for window in hall.windows}
    kinds = {device.id: device.kind for device in hall.devices}
    for index, device in enumerate(hall.devices):
        key = f"devices[{index}]"
        window = windows.get(device.window) if device.window is not None else None
        if device.area is not None and device.area not in areas:
            yield Problem(f"{key}.area", f"unknown area {device.area!r}")
        elif device.area is not None and window is not None and window.area != device.area:
            yield Problem(f"{key}.area", f"window {window.id!r} is in area {window.area!r}")
        if device.window is not None and window is None:
            yield Problem(f"{key}.window", f"unknown window {device.window!r}")
        if device.screen is not None:
            if device.kind is not DeviceKind.WINDOW_SCREEN:
                yield Problem(f"{key}.screen", f"only for a window_screen, not a {device.kind}")
            elif device.screen not in screens:
                yield Problem(f"{key}.screen", f"no window shows on screen {device.screen!r}")
            elif window is not None and _screen_id(window) != device.screen:
                yield Problem(
                    f"{key}.screen",
                    f"window {window.id!r} shows on screen {_screen_id(window)!r}",
                )
        yield from _printer_reference(key, device, kinds)
        if device.window is None and device.kind in WINDOW_DEVICE_KINDS:
            yield Problem(f"{key}.window", f"required for a {device.kind}")
        unplaced = device.window is None and device.screen is None
        if device.kind is DeviceKind.WINDOW_SCREEN and unplaced:
            yield Problem(f"{key}.window", "required for a window_screen without a screen")


def _printer_reference(
    key: str, device: _DeviceTable, kinds: Mapping[str, DeviceKind]
) -> Iterator[Problem]:
    """Only a kiosk prints through another device, and only through a printer
    the file lists: a job sent to no one would never fail fast."""
    if device.printer is None:
        return
    if device.kind is not DeviceKind.KIOSK:
        yield Problem(f"{key}.printer", f"only for a kiosk, not a {device.kind}")
    elif device.printer not in kinds:
        yield Problem(f"{key}.printer", f"unknown device {device.printer!r}")
    elif kinds[device.printer] is not DeviceKind.PRINTER:
        yield Problem(f"{key}.printer", f"{device.printer!r} is a {kinds[device.printer]}, "
                      "not a printer")


def _screen_id(window: _WindowTable) -> str:
    """As Window.screen_id: a window that shares no screen has its own."""
    return window.screen or window.id


# --- Building the engine's types ----------------------------------------------


def _layout(hall: _HallFile) -> Layout:
    """Checked input only: the engine's own LayoutError is the last safety net."""
    working_hours = _hours(hall.hall.working_hours, hall.hall.weekdays)
    policy = hall.policy
    return Layout(
        hall_id=hall.hall.id,
        name=hall.hall.name,
        areas={area.id: Area(area.id, area.name, area.floor, area.region) for area in hall.areas},
        services={item.id: _service(item, working_hours) for item in hall.services},
        windows={item.id: _window(item, working_hours) for item in hall.windows},
        packages={
            item.id: Package(item.id, item.name, item.prefix, tuple(item.services))
            for item in hall.packages
        },
        pause_reasons=_pause_reasons(hall.pause_reasons),
        working_hours=working_hours,
        no_show=NoShowPolicy(policy.no_show.requeue_behind, policy.no_show.max_requeues),
        attendance=AttendancePolicy(policy.attendance.login_grace_minutes),
        default_strategy=hall.strategies.default,
        number_width=hall.hall.number_width,
        ewma_alpha=policy.estimate.ewma_alpha,
    )


def _weekdays(days: Iterable[int]) -> frozenset[int]:
    """The file numbers weekdays as people and ISO 8601 do (Monday = 1); the
    engine as ``datetime.weekday()`` does (Monday = 0)."""
    return frozenset(day - 1 for day in days)


def _hours(intervals: Sequence[tuple[time, time]], weekdays: Iterable[int]) -> Hours:
    return Hours(tuple(intervals), _weekdays(weekdays))


def _own_hours(
    intervals: Sequence[tuple[time, time]] | None, weekdays: Sequence[int] | None, hall: Hours
) -> Hours | None:
    """Whatever a table leaves out it takes from the hall; None when it sets nothing."""
    if intervals is None and weekdays is None:
        return None
    return Hours(
        tuple(intervals) if intervals is not None else hall.intervals,
        _weekdays(weekdays) if weekdays is not None else hall.weekdays,
    )


def _service(item: _ServiceTable, working_hours: Hours) -> Service:
    own_hours = _own_hours(item.hours, item.weekdays, working_hours)
    return Service(
        id=item.id,
        name=item.name,
        category=item.category,
        prefix=item.prefix,
        hours=own_hours if own_hours is not None else working_hours,
        daily_quota=item.daily_quota,
        avg_service_minutes=item.avg_service_minutes,
    )


def _window(item: _WindowTable, working_hours: Hours) -> Window:
    return Window(
        id=item.id,
        name=item.name,
        area=item.area,
        services=dict(item.services),
        screen=item.screen,
        groups=tuple(item.groups),
        hours=_own_hours(item.hours, item.weekdays, working_hours),
    )


def _pause_reasons(items: list[_PauseReasonTable] | None) -> Mapping[str, PauseReason]:
    if items is None:
        return dict(DEFAULT_PAUSE_REASONS)
    return {
        item.code: PauseReason(item.code, item.label, item.limit_minutes, item.message)
        for item in items
    }


def _tickets(hall: _HallFile) -> Mapping[str, TicketText]:
    items: list[_TicketableTable] = [*hall.services, *hall.packages]
    texts = {item.id: _ticket_text(item) for item in items}
    texts.update((ticket_id, _ticket_text(item)) for ticket_id, item in hall.tickets.items())
    return MappingProxyType(texts)


def _ticket_text(item: _TicketTable) -> TicketText:
    return TicketText(item.direction, tuple(item.materials), item.notice)


def _auth(auth: _AuthTable) -> AuthConfig:
    return AuthConfig(
        session_hours=auth.session_hours,
        tokens=tuple(TokenEntry(item.name, item.role, item.token_sha256) for item in auth.tokens),
        staff=tuple(
            StaffEntry(item.id, item.name, item.role, item.password_hash) for item in auth.staff
        ),
        oidc=_oidc(auth.oidc) if auth.oidc is not None else None,
    )


def _oidc(oidc: _OidcTable) -> OidcConfig:
    return OidcConfig(
        issuer=oidc.issuer,
        client_id=oidc.client_id,
        client_secret_env=oidc.client_secret_env,
        redirect_url=oidc.redirect_url,
        scopes=tuple(oidc.scopes),
        staff_claim=oidc.staff_claim,
        role_claim=oidc.role_claim,
    )


def _time_limits(hall: _HallFile) -> TimeLimits:
    default = TimeLimit()
    for item in hall.time_limits:
        if item.service is None:
            default = TimeLimit(item.max_wait_minutes, item.max_service_minutes)
    services = {
        item.service: TimeLimit(
            default.max_wait_minutes if item.max_wait_minutes is None else item.max_wait_minutes,
            default.max_service_minutes if item.max_service_minutes is None
            else item.max_service_minutes,
        )
        for item in hall.time_limits
        if item.service is not None
    }
    return TimeLimits(default, MappingProxyType(services))


def _devices(hall: _HallFile) -> tuple[DeviceEntry, ...]:
    """Fills in what the file may leave out (see DeviceEntry)."""
    windows = {window.id: window for window in hall.windows}
    screen_areas: dict[str, set[str]] = {}
    for each in hall.windows:
        screen_areas.setdefault(_screen_id(each), set()).add(each.area)
    entries = []
    for item in hall.devices:
        window = windows[item.window] if item.window is not None else None
        screen = item.screen
        if item.kind is DeviceKind.WINDOW_SCREEN and screen is None and window is not None:
            screen = _screen_id(window)
        area = item.area
        if area is None and window is not None:
            area = window.area
        elif area is None and screen is not None and len(screen_areas[screen]) == 1:
            [area] = screen_areas[screen]
        entries.append(
            DeviceEntry(
                item.id, item.kind, item.name, area, item.window, screen, item.password_sha256,
                item.printer,
            )
        )
    return tuple(entries)
