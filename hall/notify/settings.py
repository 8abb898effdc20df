"""The ``[notifications]`` table of the hall file: gateways, rules, services.

Checked like the rest of the file (``hall.config`` reports the problems with
their key paths): every placeholder in a text or a request template must be
one the rule or the gateway fills, so a typo is found when the hall starts,
not when the first citizen gets ``{numbr}`` on his phone. Secrets (gateway
tokens, WeChat access tokens) never appear in the file: a gateway names the
environment variables that hold them, and they are read when the hall starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hall.notify.templates import Body, body_names, names

Channel = Literal["sms", "wechat"]
RuleName = Literal["booked", "ticket_issued", "ahead", "called", "case_progress", "case_done"]
CHANNELS: tuple[Channel, ...] = ("sms", "wechat")

_COMMON = frozenset({"hall_name", "service", "service_name"})
RULE_VALUES: Mapping[str, frozenset[str]] = MappingProxyType({
    "booked": _COMMON | {"code", "slot", "date", "time"},
    "ticket_issued": _COMMON | {"number", "ahead", "minutes", "direction"},
    "ahead": _COMMON | {"number", "ahead", "minutes", "direction"},
    "called": _COMMON | {"number", "window"},
    "case_progress": _COMMON | {"case_id", "status", "message", "number"},
    "case_done": _COMMON | {"case_id", "status", "message", "number"},
})
"""What each rule can put in its text and params."""

MESSAGE_VALUES = frozenset({
    "to", "phone", "openid", "template_id", "text", "params", "data", "idempotency_key",
    "rule", "ticket_id", "channel",
})
"""What a gateway's request template can use, besides its secrets."""

PRESETS: Mapping[str, Mapping[str, object]] = MappingProxyType({
    "wechat_template": {
        "method": "POST",
        "url": "https://api.weixin.qq.com/cgi-bin/message/template/send"
               "?access_token={access_token}",
        "format": "json",
        "body": {"touser": "{openid}", "template_id": "{template_id}", "data": "{data}"},
        "ok_field": "errcode",
        "ok_value": 0,
    },
})
"""WeChat's template-message API (公众号模板消息): the same for every hall, so a
hall names only its access token's environment variable."""

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ENV = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
_SECRET_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")


def _id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError("must be 1-64 letters, digits, '-' or '_', starting with a letter/digit")
    return value


def _secrets(value: dict[str, str]) -> dict[str, str]:
    for name, env in value.items():
        if not _SECRET_NAME.fullmatch(name):
            raise ValueError(f"{name!r}: a placeholder name is lower-case letters, digits, '_'")
        if not _ENV.fullmatch(env):
            raise ValueError(
                f"{name!r} must name an environment variable (capital letters, digits, '_'), "
                "not hold the secret itself")
        if name in MESSAGE_VALUES:
            raise ValueError(f"{name!r} is a message placeholder already")
    return value


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GatewayTable(_Table):
    id: Annotated[str, AfterValidator(_id)]
    kind: Literal["http", "log"]
    preset: Literal["wechat_template"] | None = None
    method: Literal["GET", "POST", "PUT"] | None = None
    url: str | None = Field(None, min_length=8)
    headers: dict[str, str] = Field(default_factory=dict)
    format: Literal["json", "form"] | None = None
    body: dict[str, Any] | None = None
    secrets: Annotated[dict[str, str], AfterValidator(_secrets)] = Field(default_factory=dict)
    """Placeholder name → the environment variable holding its value."""
    ok_status: list[Annotated[int, Field(ge=100, le=599)]] | None = None
    ok_field: str | None = Field(None, min_length=1)
    ok_value: str | int | bool | None = None
    timeout_seconds: float = Field(5.0, gt=0, le=120)


class RuleTable(_Table):
    rule: RuleName
    text: str = Field(min_length=1, max_length=500)
    templates: dict[Channel, str] = Field(default_factory=dict)
    """The gateway's template id per channel (an SMS provider's, a WeChat one's)."""
    params: list[str] | None = None
    """The values sent as the template's parameters; all the rule's values by default."""
    channels: list[Channel] | None = None


class ServiceTable(_Table):
    service: str
    channels: list[Channel] | None = None
    ahead: int | None = Field(None, ge=0, le=100)
    rules: list[RuleName] | None = None


class NotificationsTable(_Table):
    enabled: bool = True
    channels: dict[Channel, str] = Field(default_factory=dict)
    """Which gateway carries each channel; a channel without one is off."""
    default_channels: list[Channel] = Field(default_factory=lambda: list(CHANNELS))
    ahead: int = Field(0, ge=0, le=100)
    """Silent calling (Q6): tell a citizen when this many people are ahead; 0 is off."""
    done_statuses: list[str] = Field(default_factory=lambda: ["done", "completed", "办结"])
    max_attempts: int = Field(6, ge=1, le=50)
    retry_base_seconds: float = Field(5.0, gt=0, le=3600)
    retry_max_seconds: float = Field(900.0, gt=0, le=86400)
    lease_seconds: float = Field(120.0, gt=0, le=3600)
    concurrency: int = Field(4, ge=1, le=64)
    gateways: list[GatewayTable] = Field(default_factory=list)
    rules: list[RuleTable] = Field(default_factory=list)
    services: list[ServiceTable] = Field(default_factory=list)


# --- What the rest of the hall sees ----------------------------------------------


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    id: str
    kind: Literal["http", "log"]
    method: str = "POST"
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    format: Literal["json", "form"] = "json"
    body: Mapping[str, Body] = field(default_factory=dict)
    secrets: Mapping[str, str] = field(default_factory=dict)
    ok_status: tuple[int, ...] = ()
    """Empty: any 2xx."""
    ok_field: str | None = None
    ok_value: str | int | bool | None = None
    timeout_seconds: float = 5.0

    def secret_values(self, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
        """Read when the hall starts; a missing one stops it with the variable's name."""
        missing = [env for env in self.secrets.values() if not environ.get(env)]
        if missing:
            raise ValueError(f"notification gateway {self.id!r}: environment variable "
                             f"{missing[0]} is not set")
        return {name: environ[env] for name, env in self.secrets.items()}


@dataclass(frozen=True, slots=True)
class RuleConfig:
    rule: str
    text: str
    templates: Mapping[str, str] = field(default_factory=dict)
    params: tuple[str, ...] | None = None
    channels: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ServiceNotify:
    channels: tuple[str, ...] | None = None
    ahead: int | None = None
    rules: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class NotificationsConfig:
    enabled: bool = False
    gateways: Mapping[str, GatewayConfig] = field(default_factory=dict)
    channel_gateways: Mapping[str, str] = field(default_factory=dict)
    default_channels: tuple[str, ...] = CHANNELS
    ahead: int = 0
    done_statuses: frozenset[str] = frozenset({"done", "completed", "办结"})
    max_attempts: int = 6
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 900.0
    lease_seconds: float = 120.0
    concurrency: int = 4
    rules: Mapping[str, RuleConfig] = field(default_factory=dict)
    services: Mapping[str, ServiceNotify] = field(default_factory=dict)

    def ahead_of(self, service: str) -> int:
        own = self.services.get(service)
        return own.ahead if own is not None and own.ahead is not None else self.ahead

    def rule_for(self, rule: str, service: str | None) -> RuleConfig | None:
        """The rule if it is configured and the service (when there is one) takes it."""
        found = self.rules.get(rule)
        own = self.services.get(service) if service is not None else None
        if found is None or (own is not None and own.rules is not None and rule not in own.rules):
            return None
        return found

    def channels_for(self, rule: RuleConfig, service: str | None) -> tuple[str, ...]:
        """The rule's channels, narrowed by the service's (Q11), those with a gateway."""
        own = self.services.get(service) if service is not None else None
        chosen = rule.channels if rule.channels is not None else self.default_channels
        if own is not None and own.channels is not None:
            chosen = tuple(c for c in chosen if c in own.channels)
        return tuple(c for c in chosen if c in self.channel_gateways)


def build(table: NotificationsTable | None) -> NotificationsConfig:
    if table is None:
        return NotificationsConfig()
    return NotificationsConfig(
        enabled=table.enabled,
        gateways=MappingProxyType({g.id: _gateway(g) for g in table.gateways}),
        channel_gateways=MappingProxyType({str(k): v for k, v in table.channels.items()}),
        default_channels=tuple(table.default_channels),
        ahead=table.ahead,
        done_statuses=frozenset(table.done_statuses),
        max_attempts=table.max_attempts,
        retry_base_seconds=table.retry_base_seconds,
        retry_max_seconds=table.retry_max_seconds,
        lease_seconds=table.lease_seconds,
        concurrency=table.concurrency,
        rules=MappingProxyType({
            r.rule: RuleConfig(r.rule, r.text,
                               MappingProxyType({str(k): v for k, v in r.templates.items()}),
                               None if r.params is None else tuple(r.params),
                               None if r.channels is None else tuple(r.channels))
            for r in table.rules
        }),
        services=MappingProxyType({
            s.service: ServiceNotify(None if s.channels is None else tuple(s.channels), s.ahead,
                                     None if s.rules is None else frozenset(s.rules))
            for s in table.services
        }),
    )


def _gateway(table: GatewayTable) -> GatewayConfig:
    preset = PRESETS.get(table.preset or "", {})

    def pick(name: str, default: object) -> object:
        own = getattr(table, name)
        return own if own is not None else preset.get(name, default)

    ok_status = table.ok_status if table.ok_status is not None else []
    return GatewayConfig(
        id=table.id,
        kind=table.kind,
        method=str(pick("method", "POST")),
        url=str(pick("url", "")),
        headers=MappingProxyType(dict(table.headers)),
        format=pick("format", "json"),  # type: ignore[arg-type]
        body=MappingProxyType(dict(pick("body", {}))),  # type: ignore[call-overload]
        secrets=MappingProxyType(dict(table.secrets)),
        ok_status=tuple(ok_status),
        ok_field=pick("ok_field", None),  # type: ignore[arg-type]
        ok_value=pick("ok_value", None),  # type: ignore[arg-type]
        timeout_seconds=table.timeout_seconds,
    )


def problems(table: NotificationsTable | None, services: Sequence[str]
             ) -> Iterator[tuple[str, str]]:
    """(key path, what is wrong) for whatever the shape alone cannot tell."""
    if table is None:
        return
    key = "notifications"
    gateway_ids = [g.id for g in table.gateways]
    for index, gateway_id in enumerate(gateway_ids):
        if gateway_ids.index(gateway_id) != index:
            yield f"{key}.gateways[{index}].id", f"duplicate id {gateway_id!r}"
    for channel, gateway_id in table.channels.items():
        if gateway_id not in gateway_ids:
            yield f"{key}.channels.{channel}", f"unknown gateway {gateway_id!r}"
    for index, gateway in enumerate(table.gateways):
        yield from _gateway_problems(f"{key}.gateways[{index}]", gateway)
    seen: set[str] = set()
    for index, rule in enumerate(table.rules):
        where = f"{key}.rules[{index}]"
        if rule.rule in seen:
            yield f"{where}.rule", f"{rule.rule!r} is configured twice"
        seen.add(rule.rule)
        allowed = RULE_VALUES[rule.rule]
        for name in names(rule.text):
            if name not in allowed:
                yield f"{where}.text", f"{{{name}}} is not a value of {rule.rule!r}: " \
                      f"use {', '.join(sorted(allowed))}"
        for name in rule.params or ():
            if name not in allowed:
                yield f"{where}.params", f"{name!r} is not a value of {rule.rule!r}"
    known = set(services)
    for index, service in enumerate(table.services):
        if service.service not in known:
            yield f"{key}.services[{index}].service", f"unknown service {service.service!r}"


def _gateway_problems(where: str, gateway: GatewayTable) -> Iterator[tuple[str, str]]:
    if gateway.kind == "log":
        return
    config = _gateway(gateway)
    if not config.url.startswith(("http://", "https://")):
        yield f"{where}.url", "an http gateway needs an http:// or https:// url"
    allowed = MESSAGE_VALUES | set(gateway.secrets)
    texts = [("url", config.url), *((f"headers.{k}", v) for k, v in config.headers.items())]
    used = [(place, name) for place, text in texts for name in names(text)]
    used += [("body", name) for name in body_names(dict(config.body))]
    for place, name in used:
        if name not in allowed:
            yield f"{where}.{place}", f"nothing fills {{{name}}}: use one of " \
                  f"{', '.join(sorted(allowed))}"
