"""Who is asking (G3): staff passwords and sessions, bearer tokens for the
backend and devices, and the aiohttp middleware that puts the answer on the
request.

Secrets are never stored as given. Passwords are argon2 hashes; session tokens
are random and only their SHA-256 reaches the database, so a copy of the
``sessions`` table opens no session; backend and device tokens appear in the
configuration only as their SHA-256. A session token needs no slow hash: it is
256 random bits, not something a person chose, so it cannot be guessed from
its digest.

Every request carries at most one credential, ``Authorization: Bearer <token>``,
whether the token came from a staff login or from the configuration.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum
from functools import cache

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hall.config import StaffEntry, TokenEntry

log = logging.getLogger(__name__)


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    STAFF = "staff"
    DEVICE = "device"
    BACKEND = "backend"


STAFF_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.STAFF})
"""Roles of people, who log in with a password; the others hold configured tokens."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request, and from where (for the audit log)."""

    id: str
    role: Role
    name: str
    remote: str | None = None


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A staff account as the console shows it: never with its password hash."""

    id: str
    name: str
    role: Role
    active: bool


# --- Passwords -----------------------------------------------------------------

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """An argon2id hash with a fresh salt; slow on purpose (tens of ms, 64 MiB)."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether the password matches; the library compares in constant time.

    A malformed stored hash refuses the login instead of failing the request.
    """
    try:
        return _hasher.verify(password_hash, password)
    except VerificationError:
        return False
    except InvalidHashError:
        log.warning("a stored password hash is not a valid argon2 hash")
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with other parameters than today's defaults."""
    return _hasher.check_needs_rehash(password_hash)


@cache
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def _check(password_hash: str | None, password: str) -> bool:
    """Like verify_password, but an account without a hash (unknown, or OIDC
    only) is checked against a decoy and refused, so that it takes as long to
    refuse as a wrong password and ids cannot be probed by timing."""
    if password_hash is None:
        verify_password(_decoy_hash(), password)
        return False
    return verify_password(password_hash, password)


# --- Staff ---------------------------------------------------------------------


class StaffStore:
    """Staff accounts in the ``staff`` table.

    Hashing runs in worker threads, so a login does not stall the event loop,
    and at most ``max_hashing`` at once, since each takes 64 MiB.
    """

    def __init__(self, pool: asyncpg.Pool, *, max_hashing: int = 4) -> None:
        self._pool = pool
        self._hashing = asyncio.Semaphore(max_hashing)

    async def add(self, id: str, name: str, role: Role, password: str) -> None:
        """Create an account; an id already taken raises asyncpg.UniqueViolationError."""
        if Role(role) not in STAFF_ROLES:
            raise ValueError(f"role {role!r} is not a staff role")
        password_hash = await self._hash(password)
        await self._pool.execute(
            "INSERT INTO staff (id, name, role, password_hash) VALUES ($1, $2, $3, $4)",
            id,
            name,
            str(role),
            password_hash,
        )

    async def authenticate(self, id: str, password: str) -> Principal | None:
        """The staff member when the password is right and the account active.

        A hash made with older parameters is replaced by a current one, the
        only moment the clear password is at hand to do so.
        """
        row = await self._pool.fetchrow(
            "SELECT name, role, password_hash, active FROM staff WHERE id = $1", id
        )
        stored = row["password_hash"] if row is not None else None
        matches = await self._verify(stored, password)
        if stored is None or not matches or not row["active"]:
            return None
        if needs_rehash(stored):
            await self._rehash(id, stored, password)
        return Principal(id, Role(row["role"]), row["name"])

    async def set_password(self, id: str, password: str) -> bool:
        """Replace the password; False when there is no such account."""
        password_hash = await self._hash(password)
        status: str = await self._pool.execute(
            "UPDATE staff SET password_hash = $2 WHERE id = $1", id, password_hash
        )
        return status == "UPDATE 1"

    async def get(self, id: str) -> StaffMember | None:
        row = await self._pool.fetchrow(
            "SELECT id, name, role, active FROM staff WHERE id = $1", id
        )
        if row is None:
            return None
        return StaffMember(row["id"], row["name"], Role(row["role"]), row["active"])

    async def seed(self, entries: Iterable[StaffEntry]) -> list[str]:
        """Create the configured accounts that do not exist yet; returns their ids.

        An existing account is left alone: its password may have been changed
        since, and the configuration must not undo that at every start.
        """
        items = list(entries)
        rows = await self._pool.fetch(
            "INSERT INTO staff (id, name, role, password_hash)"
            " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])"
            " ON CONFLICT (id) DO NOTHING RETURNING id",
            [item.id for item in items],
            [item.name for item in items],
            [item.role for item in items],
            [item.password_hash for item in items],
        )
        inserted = {row["id"] for row in rows}
        return [item.id for item in items if item.id in inserted]

    async def _rehash(self, id: str, old_hash: str, password: str) -> None:
        """Only over the hash just checked: a password changed meanwhile stays."""
        new_hash = await self._hash(password)
        await self._pool.execute(
            "UPDATE staff SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
            id,
            old_hash,
            new_hash,
        )

    async def _hash(self, password: str) -> str:
        async with self._hashing:
            return await asyncio.to_thread(hash_password, password)

    async def _verify(self, password_hash: str | None, password: str) -> bool:
        async with self._hashing:
            return await asyncio.to_thread(_check, password_hash, password)


# --- Sessions --------------------------------------------------------------------


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def token_sha256(token: str) -> str:
    """The hex digest the configuration holds for a backend or device token."""
    return _digest(token).hex()


class SessionStore:
    """Staff sessions in the ``sessions`` table, found by the token's SHA-256.

    Expiry is judged by the database clock, the same one that stamped it.
    A session ends early when it is revoked or its account is deactivated.
    """

    def __init__(self, pool: asyncpg.Pool, ttl: timedelta = timedelta(hours=12)) -> None:
        self._pool = pool
        self._ttl = ttl

    async def create(self, principal: Principal, remote: str | None) -> str:
        """A new session for a staff member who has just logged in; returns its token."""
        if principal.role not in STAFF_ROLES:
            raise ValueError(f"{principal.role} principals hold configured tokens, not sessions")
        token = secrets.token_urlsafe(32)
        await self._pool.execute(
            "INSERT INTO sessions (token_hash, staff_id, expires_at, remote)"
            " VALUES ($1, $2, now() + $3::interval, $4)",
            _digest(token),
            principal.id,
            self._ttl,
            remote,
        )
        return token

    async def resolve(self, token: str, remote: str | None = None) -> Principal | None:
        """The staff member behind a live session; ``remote`` is where the
        current request comes from, which the principal carries to the audit log."""
        row = await self._pool.fetchrow(
            "SELECT staff.id, staff.name, staff.role FROM sessions"
            " JOIN staff ON staff.id = sessions.staff_id"
            " WHERE sessions.token_hash = $1 AND sessions.expires_at > now() AND staff.active",
            _digest(token),
        )
        if row is None:
            return None
        return Principal(row["id"], Role(row["role"]), row["name"], remote)

    async def revoke(self, token: str) -> bool:
        """End the session (logout); False when there was none."""
        status: str = await self._pool.execute(
            "DELETE FROM sessions WHERE token_hash = $1", _digest(token)
        )
        return status == "DELETE 1"

    async def purge_expired(self) -> int:
        """Drop expired sessions, which only take room; returns how many."""
        status: str = await self._pool.execute("DELETE FROM sessions WHERE expires_at <= now()")
        return int(status.split()[-1])


# --- Configured tokens ---------------------------------------------------------------


class TokenTable:
    """Bearer tokens of the backend and devices, from the configuration."""

    def __init__(self, entries: Iterable[TokenEntry]) -> None:
        self._entries = tuple(
            (bytes.fromhex(entry.token_sha256), Principal(entry.name, Role(entry.role), entry.name))
            for entry in entries
        )

    def resolve(self, token: str, remote: str | None = None) -> Principal | None:
        """Compares with every entry, in constant time, so that neither a
        partial match nor an entry's position shows in the time taken."""
        digest = _digest(token)
        found = None
        for expected, principal in self._entries:
            if hmac.compare_digest(digest, expected):
                found = principal
        return replace(found, remote=remote) if found is not None else None


# --- HTTP ----------------------------------------------------------------------------

PRINCIPAL = web.RequestKey[Principal | None]("principal")
"""Set on every request by ``auth_middleware``: None for an anonymous caller."""

_BEARER = re.compile(r"Bearer +([A-Za-z0-9._~+/-]+=*) *", re.IGNORECASE)
"""RFC 6750 ``b64token``; the scheme name is case-insensitive (RFC 9110)."""

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="smarthall"'}


def bearer_token(request: web.Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None without the header.

    Any other form is refused outright: a client that sends credentials it
    believes valid should hear that they were not understood, not be served
    as anonymous.
    """
    header = request.headers.get("Authorization")
    if header is None:
        return None
    match = _BEARER.fullmatch(header)
    if match is None:
        raise web.HTTPUnauthorized(
            text="Authorization must be 'Bearer <token>'", headers=_CHALLENGE
        )
    return match[1]


def _websocket_token(request: web.Request) -> str | None:
    """A browser cannot set headers on a websocket, so the event stream alone also
    takes ``?access_token=`` (RFC 6750, section 2.3); nowhere else, since URLs end up
    in logs and browser histories."""
    if request.path != STREAM_PATH or request.method != "GET":
        return None
    return request.query.get("access_token") or None


STREAM_PATH = "/api/v1/events"


class Authenticator:
    """Finds the principal behind a request's bearer token, whichever kind it is."""

    def __init__(self, sessions: SessionStore, tokens: TokenTable) -> None:
        self.sessions = sessions
        self.tokens = tokens

    async def principal_for(self, request: web.Request) -> Principal | None:
        """None for no token or an unknown or expired one; a malformed
        Authorization header raises HTTPUnauthorized."""
        token = bearer_token(request)
        if token is None:
            token = _websocket_token(request)
        if token is None:
            return None
        configured = self.tokens.resolve(token, request.remote)
        if configured is not None:
            return configured
        return await self.sessions.resolve(token, request.remote)


def auth_middleware(authenticator: Authenticator) -> Middleware:
    """Puts the caller's principal on every request under ``PRINCIPAL``.

    An unknown or expired token leaves the request anonymous rather than
    failing it, so that public endpoints still answer; ``require`` then says
    why a protected one does not.
    """

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[PRINCIPAL] = await authenticator.principal_for(request)
        return await handler(request)

    return authenticate


def require(request: web.Request, *roles: Role) -> Principal:
    """The request's principal, which must hold one of ``roles`` (any role when
    none are given); raises HTTPUnauthorized or HTTPForbidden otherwise.

    Roles are not ranked: a handler lists every role it admits.
    """
    if PRINCIPAL not in request:
        raise RuntimeError("auth_middleware is not installed on this application")
    principal = request[PRINCIPAL]
    if principal is None:
        text = (
            "invalid or expired token"
            if "Authorization" in request.headers
            else "authentication required"
        )
        raise web.HTTPUnauthorized(text=text, headers=_CHALLENGE)
    if roles and principal.role not in roles:
        raise web.HTTPForbidden(text=f"needs role {' or '.join(roles)}")
    return principal


async def authorize(request: web.Request, roles: tuple[str, ...]) -> None:
    """``require`` in the shape of the API router's ``authorize`` hook, whose
    routes name their roles as strings; an unknown role name is a programming
    error (ValueError), not a refusal."""
    require(request, *(Role(role) for role in roles))
