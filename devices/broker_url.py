"""The broker's address, parsed once from its URL for devices and the hall server alike.

Both ends read the same ``mqtt://`` URLs (HALL_MQTT_URL, an agent's ``mqtt_url``), so
they must agree on what one means: which schemes take TLS, the default ports, and that
user name and password are percent-encoded (a password with ``@``, ``:`` or ``/`` cannot
be written in a URL otherwise). Parsing is strict so that a mistyped URL is refused when
the configuration is read, not found out by a reconnection loop that never succeeds.

This module must never import ``hall``: the edge agent runs without the server.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

TLS_SCHEMES = frozenset({"mqtts", "ssl"})
PLAIN_SCHEMES = frozenset({"mqtt", "tcp"})
SCHEMES = ", ".join(sorted(TLS_SCHEMES | PLAIN_SCHEMES))
PLAIN_PORT = 1883
TLS_PORT = 8883


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    """Kept out of ``repr`` so that logging an address cannot leak it."""
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Raises ValueError saying what is wrong; the message never contains the
        URL, which may hold a password: callers say where it came from."""
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in TLS_SCHEMES | PLAIN_SCHEMES:
            given = f"{scheme}://" if scheme else "no scheme"
            raise ValueError(f"an MQTT broker URL must start with one of {SCHEMES} "
                             f"(mqtts and ssl with TLS), not {given}")
        if not parts.hostname:
            raise ValueError("an MQTT broker URL must name the broker's host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("an MQTT broker URL's port must be a number from 1 to 65535"
                             ) from None
        if port == 0:
            raise ValueError("an MQTT broker URL's port must be a number from 1 to 65535")
        tls = scheme in TLS_SCHEMES
        return cls(
            host=parts.hostname,
            port=port or (TLS_PORT if tls else PLAIN_PORT),
            username=None if parts.username is None else unquote(parts.username),
            password=None if parts.password is None else unquote(parts.password),
            tls=tls,
        )

    def tls_context(self) -> ssl.SSLContext | None:
        """Made at each connection, so a CA file replaced (SSL_CERT_FILE, which
        ``create_default_context`` reads, names a private CA) counts at the next one."""
        return ssl.create_default_context() if self.tls else None
