"""Gateway adapters: how a message leaves the hall.

A channel (SMS, WeChat) says who the message is for and what the template's
parameters look like; an adapter says how it travels. ``HttpGateway`` fits
the SMS providers' and WeChat's HTTP APIs with a request template from the
hall file, ``LogGateway`` only writes the message to the log (the demo, a
hall without a contract yet).

Every request carries the message's idempotency key (``{idempotency_key}``
and an ``Idempotency-Key`` header): delivery is at least once, and a gateway
that dedupes by it turns the one possible repeat (the hall stopped between
the gateway's answer and recording it) into none.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from hall.notify.settings import GatewayConfig
from hall.notify.templates import Body, TemplateError, render, render_body
from hall.pii import mask_phone

log = logging.getLogger(__name__)

RETRYABLE_4XX = frozenset({408, 409, 425, 429})
"""Client errors that say "later", not "never"."""


@dataclass(frozen=True, slots=True)
class Message:
    idempotency_key: str
    rule: str
    channel: str
    to: str
    """A phone number (SMS) or an openid (WeChat)."""
    template_id: str
    text: str
    params: Mapping[str, str] = field(default_factory=dict)
    ticket_id: str | None = None

    def values(self) -> dict[str, Any]:
        """What a request template can use (``settings.MESSAGE_VALUES``)."""
        return {
            "to": self.to,
            "phone": self.to if self.channel == "sms" else "",
            "openid": self.to if self.channel == "wechat" else "",
            "template_id": self.template_id,
            "text": self.text,
            "params": dict(self.params),
            "data": {name: {"value": value} for name, value in self.params.items()},
            "idempotency_key": self.idempotency_key,
            "rule": self.rule,
            "ticket_id": self.ticket_id or "",
            "channel": self.channel,
        }

    def shown_to(self) -> str:
        """For logs and the manager's list: never the whole address."""
        return masked_address(self.channel, self.to)


def masked_address(channel: str, address: str) -> str:
    if channel == "sms":
        return mask_phone(address)
    return address[:4] + "*" * max(len(address) - 4, 0)


@dataclass(frozen=True, slots=True)
class Delivery:
    ok: bool
    retry: bool
    """Whether another try could succeed (a timeout may; a rejected number will not)."""
    http_status: int | None = None
    error: str | None = None
    seconds: float = 0.0


class Gateway(Protocol):
    id: str

    async def send(self, message: Message) -> Delivery: ...

    async def close(self) -> None: ...


class LogGateway:
    def __init__(self, config: GatewayConfig) -> None:
        self.id = config.id

    async def send(self, message: Message) -> Delivery:
        log.info("notification %s by %s to %s (template %s): %s", message.idempotency_key,
                 message.channel, message.shown_to(), message.template_id or "-", message.text)
        return Delivery(ok=True, retry=False)

    async def close(self) -> None:
        return None


class HttpGateway:
    def __init__(self, config: GatewayConfig, secrets: Mapping[str, str]) -> None:
        self.id = config.id
        self.config = config
        self._secrets = dict(secrets)
        self._session: aiohttp.ClientSession | None = None

    def request(self, message: Message) -> tuple[str, dict[str, str], dict[str, Any]]:
        """URL, headers and the body arguments for aiohttp; the tests check WeChat's
        shape through here and through the fake gateway alike."""
        values = {**message.values(), **self._secrets}
        config = self.config
        url = render(config.url, values, quote=lambda text: quote(text, safe=""))
        headers = {name: render(text, values) for name, text in config.headers.items()}
        headers.setdefault("Idempotency-Key", message.idempotency_key)
        if config.method == "GET" or not config.body:
            return url, headers, {}
        body = render_body(dict(config.body), values)
        if config.format == "form":
            assert isinstance(body, dict)
            return url, headers, {"data": {key: _form_value(item) for key, item in body.items()}}
        return url, headers, {"json": body}

    async def send(self, message: Message) -> Delivery:
        started = time.perf_counter()
        try:
            url, headers, body = self.request(message)
        except TemplateError as exc:
            return Delivery(ok=False, retry=False, error=f"request template: {exc}")
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        try:
            async with self._client().request(self.config.method, url, headers=headers,
                                              timeout=timeout, **body) as response:
                status = response.status
                payload = await response.read()
        except TimeoutError:
            return Delivery(ok=False, retry=True, error=f"timed out after "
                            f"{self.config.timeout_seconds:g} s", seconds=_since(started))
        except (aiohttp.ClientError, OSError) as exc:
            return Delivery(ok=False, retry=True, error=f"connection failed: {exc}",
                            seconds=_since(started))
        return self._judge(status, payload, _since(started))

    def _judge(self, status: int, payload: bytes, seconds: float) -> Delivery:
        config = self.config
        accepted = status in config.ok_status if config.ok_status else 200 <= status < 300
        if not accepted:
            retry = status >= 500 or status in RETRYABLE_4XX
            return Delivery(ok=False, retry=retry, http_status=status,
                            error=f"HTTP {status}", seconds=seconds)
        if config.ok_field is None:
            return Delivery(ok=True, retry=False, http_status=status, seconds=seconds)
        found = _field(payload, config.ok_field)
        if config.ok_value is None and found not in (None, False, "", 0):
            return Delivery(ok=True, retry=False, http_status=status, seconds=seconds)
        if config.ok_value is not None and found == config.ok_value:
            return Delivery(ok=True, retry=False, http_status=status, seconds=seconds)
        return Delivery(ok=False, retry=True, http_status=status,
                        error=f"gateway answered {config.ok_field}={found!r}", seconds=seconds)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def build_gateway(config: GatewayConfig) -> Gateway:
    """Secrets are read here, when the hall starts, so a missing one stops it."""
    if config.kind == "log":
        return LogGateway(config)
    return HttpGateway(config, config.secret_values())


def _field(payload: bytes, path: str) -> object:
    """A dotted path into a JSON answer; None when it is not there or not JSON."""
    try:
        found: object = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    for part in path.split("."):
        if not isinstance(found, dict) or part not in found:
            return None
        found = found[part]
    return found


def _form_value(item: Body) -> str:
    if isinstance(item, str):
        return item
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"))


def _since(started: float) -> float:
    return time.perf_counter() - started


async def close_all(gateways: Mapping[str, Gateway]) -> None:
    await asyncio.gather(*(gateway.close() for gateway in gateways.values()),
                         return_exceptions=True)
