"""Staff login through OpenID Connect (G3), for halls whose staff have one
identity at a unified provider instead of a password kept by the hall.

The flow is the authorization code flow with PKCE and a nonce:

1. ``GET /api/v1/auth/oidc/start`` answers 302 to the provider's authorization
   endpoint, with a fresh ``state``, ``nonce`` and S256 ``code_challenge``, and
   sets a short-lived cookie that ties the login to this browser.
2. The provider sends the browser to the configured ``redirect_url`` with
   ``?code=...&state=...``.
3. ``GET /api/v1/auth/oidc/callback?code=...&state=...`` exchanges the code at
   the provider's token endpoint, checks the ID token (signature against the
   provider's JWKS, ``iss``, ``aud``, ``exp``, ``nonce``), finds the staff
   account whose ``staff.oidc_subject`` equals the configured claim, and
   answers like the password login: ``{"token", "staff_id", "role", "name"}``,
   a bearer session token from ``SessionStore``.

``redirect_url`` may be the callback itself, and the browser then shows that
JSON; or it may be a console page, which passes its query string on to the
callback with ``fetch`` and keeps the token it gets back, as after a password
login. Either way the provider must know ``redirect_url`` exactly, and the
callback must be reached from the browser that called /start, with its
cookies: a same-origin ``fetch`` sends them by default.

Accounts are never created here: a manager gives a staff account its
``oidc_subject`` first, so the provider alone cannot let anyone into the hall.

Failures are RFC 9457 problems with stable codes: ``oidc_bad_state`` (400:
unknown, expired or already used ``state``, or another browser's),
``oidc_provider_error`` (502: the provider is unreachable or broken; 401: it
refused the login), ``oidc_invalid_token`` (401: the ID token does not check
out), ``oidc_unknown_staff`` (403: no active account for that identity) and
``oidc_bad_role`` (403: ``role_claim`` is configured and the token does not
name exactly one staff role).

Authlib does the OpenID Connect checks of the claims, and joserfc (the JOSE
library Authlib itself now builds on) the signature; the three HTTP calls go
through aiohttp, which the server already uses, rather than Authlib's httpx
client.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import asyncpg
from aiohttp import web
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from yarl import URL

from hall.api.problems import Problem, problem_middleware
from hall.audit import AuditLog
from hall.auth import STAFF_ROLES, Principal, Role, SessionStore
from hall.config import OidcConfig

log = logging.getLogger(__name__)

START_PATH = "/api/v1/auth/oidc/start"
CALLBACK_PATH = "/api/v1/auth/oidc/callback"
COOKIE_PATH = "/api/v1/auth/oidc"

PENDING_SECONDS = 600.0
"""How long a person may take at the provider's login page."""
MAX_PENDING = 10_000
"""Bound on logins in progress, so that calling /start in a loop cannot fill memory."""
METADATA_SECONDS = 3600.0
"""How long the discovery document is trusted before it is read again."""
LEEWAY_SECONDS = 60
"""Clock skew allowed between the hall and the provider for exp, iat and nbf."""
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)

SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
"""Public-key algorithms only: an ID token must be checkable against the JWKS,
and neither ``none`` nor an HMAC keyed with the client secret proves who signed."""

NO_STORE = {"Cache-Control": "no-store"}

BINDING_COOKIE = "hall_oidc_login"
"""Ties a login to the browser that started it: without it, anyone could send
a colleague a callback link for their own login (login CSRF, RFC 6749 section
10.12) and have the console act under the wrong account."""


# --- Problems --------------------------------------------------------------------------


def bad_state(detail: str) -> Problem:
    return Problem(400, "oidc_bad_state", "Unknown, used or expired login", detail)


def provider_error(detail: str, status: int = 502) -> Problem:
    """502 when the provider cannot be used; 401 when it refused the login."""
    title = (
        "The identity provider refused the login"
        if status == 401
        else "The identity provider cannot be reached or answered wrongly"
    )
    return Problem(status, "oidc_provider_error", title, detail)


def invalid_token(detail: str) -> Problem:
    return Problem(
        401, "oidc_invalid_token", "The identity provider's ID token is not valid", detail
    )


def unknown_staff() -> Problem:
    """The same answer for an unknown and an inactive account: which of the
    two it is, is the hall's business, not the caller's."""
    return Problem(403, "oidc_unknown_staff", "No active staff account for this identity")


def bad_role(detail: str) -> Problem:
    return Problem(403, "oidc_bad_role", "The identity provider gives no staff role", detail)


# --- Logins in progress ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What /start hands the provider in hashed or opaque form, and /callback
    must check against: kept on the server, so the browser cannot change it."""

    nonce: str
    code_verifier: str
    binding: str
    """Also set as the browser's BINDING_COOKIE."""
    expires: float


class PendingLogins:
    """Logins between /start and /callback, keyed by ``state``, in memory.

    Each is taken at most once, so a replayed callback finds nothing. Lost on
    restart, which only makes the person start again. All live equally long,
    so insertion order is expiry order: the oldest go first, when expired or
    when the table is full.
    """

    def __init__(
        self,
        ttl: float = PENDING_SECONDS,
        capacity: int = MAX_PENDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._capacity = capacity
        self._clock = clock
        self._items: dict[str, PendingLogin] = {}

    def __len__(self) -> int:
        return len(self._items)

    def open(self) -> tuple[str, PendingLogin]:
        """A new login: its ``state`` and the secrets that go with it."""
        self._purge()
        while len(self._items) >= self._capacity:
            del self._items[next(iter(self._items))]
        state = secrets.token_urlsafe(32)
        pending = PendingLogin(
            nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64),
            binding=secrets.token_urlsafe(32),
            expires=self._clock() + self._ttl,
        )
        self._items[state] = pending
        return state, pending

    def take(self, state: str) -> PendingLogin | None:
        """The login for ``state``, removed; None when unknown, used or expired."""
        pending = self._items.pop(state, None)
        if pending is None or pending.expires <= self._clock():
            return None
        return pending

    def _purge(self) -> None:
        now = self._clock()
        while self._items:
            state = next(iter(self._items))
            if self._items[state].expires > now:
                return
            del self._items[state]


# --- The provider over HTTP ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """The parts of the discovery document this client uses."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    algorithms: tuple[str, ...]
    post_secret: bool
    """Whether the client secret goes in the form body (``client_secret_post``),
    for providers that do not take the default HTTP Basic authentication."""

    @classmethod
    def from_document(cls, document: Mapping[str, Any], issuer: str) -> ProviderMetadata:
        """OpenID Connect Discovery requires the document to name the issuer it
        was fetched for; another one means a misconfiguration or an impostor."""
        if document.get("issuer") != issuer:
            raise provider_error(f"discovery names issuer {document.get('issuer')!r}")
        listed = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = tuple(alg for alg in listed if alg in SIGNING_ALGORITHMS)
        if not algorithms:
            raise provider_error("the provider signs ID tokens with no public-key algorithm")
        methods = document.get("token_endpoint_auth_methods_supported") or []
        return cls(
            authorization_endpoint=_endpoint(document, "authorization_endpoint"),
            token_endpoint=_endpoint(document, "token_endpoint"),
            jwks_uri=_endpoint(document, "jwks_uri"),
            algorithms=algorithms,
            post_secret="client_secret_basic" not in methods and "client_secret_post" in methods,
        )


def _endpoint(document: Mapping[str, Any], key: str) -> str:
    value = document.get(key)
    if not isinstance(value, str) or not value:
        raise provider_error(f"the discovery document has no {key}")
    return value


class ProviderClient:
    """Discovery, keys and the token endpoint of one provider.

    The discovery document and the keys are cached; the keys are read again
    when a token names a key id they lack, which is how providers rotate keys.
    """

    def __init__(
        self, config: OidcConfig, client_secret: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._secret = client_secret
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._metadata: ProviderMetadata | None = None
        self._metadata_until = 0.0
        self._keys: KeySet | None = None

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None or self._clock() >= self._metadata_until:
            url = self._config.issuer.rstrip("/") + "/.well-known/openid-configuration"
            document = await self._get_json(url)
            self._metadata = ProviderMetadata.from_document(document, self._config.issuer)
            self._metadata_until = self._clock() + METADATA_SECONDS
        return self._metadata

    async def keys(self, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            document = await self._get_json((await self.metadata()).jwks_uri)
            try:
                self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise provider_error(f"the JWKS cannot be read: {exc}") from exc
        return self._keys

    async def exchange(self, code: str, code_verifier: str) -> dict[str, Any]:
        """The token response for an authorization code (RFC 6749 section 4.1.3)."""
        metadata = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._config.redirect_url,
            "code_verifier": code_verifier,
        }
        headers = dict(_ACCEPT_JSON)
        if metadata.post_secret:
            form |= {"client_id": self._config.client_id, "client_secret": self._secret}
        else:
            headers["Authorization"] = self._basic_auth()
        try:
            async with self._client().post(
                metadata.token_endpoint, data=form, headers=headers
            ) as response:
                status = response.status
                body = await _json_or_none(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _unreachable(metadata.token_endpoint, exc) from exc
        return _token_response(status, body)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _basic_auth(self) -> str:
        """RFC 6749 section 2.3.1: both parts form-encoded before Basic encoding."""
        return aiohttp.encode_basic_auth(
            quote(self._config.client_id, safe=""), quote(self._secret, safe="")
        )

    def _client(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running event loop, as aiohttp wants."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=HTTP_TIMEOUT)
        return self._session

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._client().get(url, headers=_ACCEPT_JSON) as response:
                if response.status != 200:
                    raise provider_error(f"{url} answered HTTP {response.status}")
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise _unreachable(url, exc) from exc
        if not isinstance(document, dict):
            raise provider_error(f"{url} did not answer a JSON object")
        return document


_ACCEPT_JSON = {"Accept": "application/json"}


async def _json_or_none(response: aiohttp.ClientResponse) -> object:
    """The body as JSON; None when it is not, as from a proxy's error page."""
    try:
        return await response.json(content_type=None)
    except ValueError:
        return None


def _unreachable(url: str, error: Exception) -> Problem:
    log.warning("OIDC provider call to %s failed: %r", url, error)
    return provider_error(f"{url} cannot be used: {type(error).__name__}")


def _token_response(status: int, body: object) -> dict[str, Any]:
    """A 4xx with an OAuth error means the provider refused this code (used,
    expired, or not ours); anything else unexpected means it is broken."""
    if status == 200 and isinstance(body, dict) and isinstance(body.get("id_token"), str):
        return body
    if 400 <= status < 500 and isinstance(body, dict) and isinstance(body.get("error"), str):
        raise provider_error(f"the token endpoint said {_short(body['error'])}", status=401)
    raise provider_error(f"the token endpoint answered HTTP {status} without an ID token")


def _short(text: str) -> str:
    """OAuth error codes are short ASCII words; anything else is not echoed whole."""
    return ascii(text[:64])


# --- The login -----------------------------------------------------------------------


class OidcLogin:
    """The two endpoints of the login and what they share.

    ``client_secret`` defaults to the environment variable the configuration
    names; a missing one fails here, at start-up, not at the first login.
    """

    def __init__(
        self,
        config: OidcConfig,
        pool: asyncpg.Pool,
        sessions: SessionStore,
        audit: AuditLog | None = None,
        *,
        client_secret: str | None = None,
        pending: PendingLogins | None = None,
    ) -> None:
        self.config = config
        self._pool = pool
        self._sessions = sessions
        self._audit = audit
        secret = client_secret if client_secret is not None else _secret_from_env(config)
        self.provider = ProviderClient(config, secret)
        self.pending = pending if pending is not None else PendingLogins()

    async def start(self, request: web.Request) -> web.Response:
        """302 to the provider. Discovery first, so that a provider that is down
        leaves no pending login behind."""
        metadata = await self.provider.metadata()
        state, pending = self.pending.open()
        query = {
            "response_type": "code",
            "client_id": self.config.client_id,
            "redirect_uri": self.config.redirect_url,
            "scope": " ".join(self.config.scopes),
            "state": state,
            "nonce": pending.nonce,
            "code_challenge": create_s256_code_challenge(pending.code_verifier),
            "code_challenge_method": "S256",
        }
        location = URL(metadata.authorization_endpoint).update_query(query)
        response = web.Response(status=302, headers={"Location": str(location), **NO_STORE})
        response.set_cookie(
            BINDING_COOKIE,
            pending.binding,
            max_age=int(PENDING_SECONDS),
            path=COOKIE_PATH,
            secure=self.config.redirect_url.startswith("https:"),
            httponly=True,
            samesite="Lax",
        )
        return response

    async def callback(self, request: web.Request) -> web.Response:
        """The state is taken before anything else, so each is used once, even
        by a callback that fails."""
        pending = self.pending.take(request.query.get("state", ""))
        if pending is None or not _same(request.cookies.get(BINDING_COOKIE, ""), pending.binding):
            raise bad_state("start the login again, in this browser")
        if "error" in request.query:
            raise provider_error(f"the provider said {_short(request.query['error'])}", 401)
        code = request.query.get("code")
        if not code:
            raise provider_error("the provider sent no code")
        tokens = await self.provider.exchange(code, pending.code_verifier)
        claims = await self.verify(tokens["id_token"], pending.nonce, tokens.get("access_token"))
        principal = await self.staff_for(claims, request.remote)
        token = await self._sessions.create(principal, request.remote)
        if self._audit is not None:
            await self._audit.record(principal, "auth.login", None, {"method": "oidc"})
        body = {
            "token": token,
            "staff_id": principal.id,
            "role": principal.role.value,
            "name": principal.name,
        }
        response = web.json_response(body, headers=NO_STORE)
        response.del_cookie(BINDING_COOKIE, path=COOKIE_PATH)
        return response

    async def verify(
        self, id_token: str, nonce: str, access_token: object = None
    ) -> dict[str, Any]:
        """The ID token's claims once its signature, issuer, audience, times,
        nonce (and at_hash, when present) check out; raises oidc_invalid_token."""
        metadata = await self.provider.metadata()
        registry = JWSRegistry(algorithms=metadata.algorithms, strict_check_header=False)
        try:
            try:
                token = jwt.decode(id_token, await self.provider.keys(), registry=registry)
            except InvalidKeyIdError:
                keys = await self.provider.keys(refresh=True)
                token = jwt.decode(id_token, keys, registry=registry)
            claims = CodeIDToken(
                token.claims,
                token.header,
                options={
                    "iss": {"essential": True, "value": self.config.issuer},
                    "aud": {"essential": True, "value": self.config.client_id},
                },
                params={
                    "nonce": nonce,
                    "client_id": self.config.client_id,
                    "access_token": access_token if isinstance(access_token, str) else None,
                },
            )
            claims.validate(leeway=LEEWAY_SECONDS)
        except (JoseError, ValueError) as exc:
            raise invalid_token(_why(exc)) from exc
        return dict(claims)

    async def staff_for(self, claims: Mapping[str, Any], remote: str | None) -> Principal:
        """The active account whose ``oidc_subject`` is the configured claim;
        with ``role_claim``, the provider's role replaces the account's."""
        subject = claims.get(self.config.staff_claim)
        if not isinstance(subject, str) or not subject:
            raise invalid_token(f"the ID token has no {self.config.staff_claim!r} claim")
        row = await self._pool.fetchrow(
            "SELECT id, name, role FROM staff WHERE oidc_subject = $1 AND active", subject
        )
        if row is None:
            raise unknown_staff()
        principal = Principal(row["id"], Role(row["role"]), row["name"], remote)
        if self.config.role_claim is None:
            return principal
        return await self._follow_role(principal, claims.get(self.config.role_claim))

    async def _follow_role(self, principal: Principal, claimed: object) -> Principal:
        """The provider is where roles are managed in such a hall, so the
        account takes the claimed role, and the change is audited."""
        role = staff_role(claimed)
        if role is None:
            raise bad_role(f"claim {self.config.role_claim!r} names no single staff role")
        if role is principal.role:
            return principal
        await self._pool.execute(
            "UPDATE staff SET role = $2 WHERE id = $1", principal.id, role.value
        )
        if self._audit is not None:
            detail = {"from": principal.role.value, "to": role.value, "by": "oidc"}
            await self._audit.record(principal, "staff.role", principal.id, detail)
        return Principal(principal.id, role, principal.name, principal.remote)

    async def close(self) -> None:
        await self.provider.close()


def _same(given: str, expected: str) -> bool:
    """In constant time; bytes, since a cookie from the request may not be ASCII."""
    return hmac.compare_digest(given.encode(), expected.encode())


def _why(error: Exception) -> str:
    """joserfc errors carry a code and, not always, a description."""
    if isinstance(error, JoseError):
        return f"{error.error}: {error.description}" if error.description else error.error
    return str(error) or type(error).__name__


def staff_role(claimed: object) -> Role | None:
    """A role claim is a string or a list of them (groups); it must name
    exactly one staff role, since roles are not ranked and the hall must not
    pick one for the provider."""
    values = [claimed] if isinstance(claimed, str) else claimed
    if not isinstance(values, list):
        return None
    found = {Role(value) for value in values if isinstance(value, str) and value in STAFF_ROLES}
    return found.pop() if len(found) == 1 else None


def _secret_from_env(config: OidcConfig) -> str:
    secret = os.environ.get(config.client_secret_env, "")
    if not secret:
        raise ValueError(
            f"environment variable {config.client_secret_env} (auth.oidc.client_secret_env) "
            "is not set"
        )
    return secret


def add_oidc_routes(app: web.Application, oidc: OidcLogin) -> None:
    """Mount the two endpoints, and close the provider connections with the app.

    Puts ``problem_middleware`` first unless it is there already, as
    ``Api.setup`` does, so that failures answer as problem documents in any app.
    """
    if problem_middleware not in app.middlewares:
        app.middlewares.insert(0, problem_middleware)
    app.router.add_get(START_PATH, oidc.start)
    app.router.add_get(CALLBACK_PATH, oidc.callback)

    async def close(app: web.Application) -> None:
        await oidc.close()

    app.on_cleanup.append(close)
