"""Authentication (G3): staff passwords and sessions, configured tokens for the
backend and devices, and the middleware that tells handlers who is asking,
against a real PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from argon2 import PasswordHasher

from hall.auth import (
    PRINCIPAL,
    Authenticator,
    Principal,
    Role,
    SessionStore,
    StaffMember,
    StaffStore,
    TokenTable,
    auth_middleware,
    authorize,
    hash_password,
    needs_rehash,
    require,
    token_sha256,
    verify_password,
)
from hall.config import StaffEntry, TokenEntry, load_hall_config

DEMO = Path(__file__).resolve().parent.parent / "config" / "demo-hall.toml"
DEMO_PASSWORD = "hall-demo-2026"
PASSWORD = "correct horse battery staple"
BACKEND_TOKEN = "backend-token-for-tests"
DEVICE_TOKEN = "kiosk-token-for-tests"


@pytest.fixture
async def staff(pool: asyncpg.Pool) -> StaffStore:
    store = StaffStore(pool)
    await store.add("zhangwei", "张伟", Role.STAFF, PASSWORD)
    return store


@pytest.fixture
def sessions(pool: asyncpg.Pool) -> SessionStore:
    return SessionStore(pool)


@pytest.fixture
def tokens() -> TokenTable:
    return TokenTable(
        [
            TokenEntry("approval-backend", "backend", token_sha256(BACKEND_TOKEN)),
            TokenEntry("kiosk-01", "device", token_sha256(DEVICE_TOKEN)),
        ]
    )


# --- Passwords -----------------------------------------------------------------


def test_a_password_hash_is_argon2id_and_verifies_only_its_password() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert verify_password(stored, PASSWORD)
    assert not verify_password(stored, PASSWORD + "!")


def test_a_malformed_stored_hash_refuses_instead_of_raising() -> None:
    assert not verify_password("not-a-hash", PASSWORD)


# --- Staff -----------------------------------------------------------------------


async def test_the_right_password_gives_the_staff_member_with_the_role(
    staff: StaffStore,
) -> None:
    assert await staff.authenticate("zhangwei", PASSWORD) == Principal(
        "zhangwei", Role.STAFF, "张伟"
    )


async def test_a_wrong_password_is_refused(staff: StaffStore) -> None:
    assert await staff.authenticate("zhangwei", "wrong") is None


async def test_an_unknown_id_is_refused(staff: StaffStore) -> None:
    assert await staff.authenticate("nobody", PASSWORD) is None


async def test_inactive_staff_are_refused_even_with_the_right_password(
    staff: StaffStore, pool: asyncpg.Pool
) -> None:
    await pool.execute("UPDATE staff SET active = false WHERE id = 'zhangwei'")
    assert await staff.authenticate("zhangwei", PASSWORD) is None


async def test_staff_without_a_password_cannot_log_in_with_one(
    staff: StaffStore, pool: asyncpg.Pool
) -> None:
    """Accounts that log in through OIDC have no password hash."""
    await pool.execute(
        "INSERT INTO staff (id, name, role, oidc_subject) VALUES ('oidc', '单点', 'staff', 's1')"
    )
    assert await staff.authenticate("oidc", "") is None


async def test_only_people_roles_can_be_staff(staff: StaffStore) -> None:
    with pytest.raises(ValueError, match="not a staff role"):
        await staff.add("kiosk", "自助机", Role.DEVICE, PASSWORD)


async def test_the_stored_hash_is_argon2_and_not_the_password(
    staff: StaffStore, pool: asyncpg.Pool
) -> None:
    stored = await pool.fetchval("SELECT password_hash FROM staff WHERE id = 'zhangwei'")
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_a_new_password_replaces_the_old_one(staff: StaffStore) -> None:
    assert await staff.set_password("zhangwei", "new password")
    assert await staff.authenticate("zhangwei", PASSWORD) is None
    assert await staff.authenticate("zhangwei", "new password") is not None


async def test_setting_the_password_of_nobody_says_so(staff: StaffStore) -> None:
    assert not await staff.set_password("nobody", PASSWORD)


async def test_get_shows_the_account_without_its_hash(staff: StaffStore) -> None:
    assert await staff.get("zhangwei") == StaffMember("zhangwei", "张伟", Role.STAFF, True)
    assert await staff.get("nobody") is None


async def test_a_hash_with_old_parameters_is_renewed_at_login(
    staff: StaffStore, pool: asyncpg.Pool
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    await pool.execute("UPDATE staff SET password_hash = $1 WHERE id = 'zhangwei'", weak)
    assert await staff.authenticate("zhangwei", PASSWORD) is not None
    renewed = await pool.fetchval("SELECT password_hash FROM staff WHERE id = 'zhangwei'")
    assert renewed != weak
    assert not needs_rehash(renewed)
    assert verify_password(renewed, PASSWORD)


async def test_seeding_creates_the_demo_accounts_with_the_demo_password(
    pool: asyncpg.Pool,
) -> None:
    store = StaffStore(pool)
    seeded = await store.seed(load_hall_config(DEMO).auth.staff)
    assert seeded == ["admin", "liuyang", "zhangwei", "wangfang", "lina"]
    admin = await store.authenticate("admin", DEMO_PASSWORD)
    assert admin is not None
    assert admin.role is Role.ADMIN


async def test_seeding_leaves_existing_accounts_and_their_passwords_alone(
    staff: StaffStore,
) -> None:
    entries = [
        StaffEntry("zhangwei", "改名", "admin", hash_password("from the config")),
        StaffEntry("lina", "李娜", "staff", hash_password("from the config")),
    ]
    assert await staff.seed(entries) == ["lina"]
    assert await staff.seed(entries) == []
    assert await staff.authenticate("zhangwei", PASSWORD) == Principal(
        "zhangwei", Role.STAFF, "张伟"
    )
    assert await staff.authenticate("zhangwei", "from the config") is None


# --- Sessions --------------------------------------------------------------------


async def test_a_session_token_resolves_to_its_staff_member(
    staff: StaffStore, sessions: SessionStore
) -> None:
    principal = await staff.authenticate("zhangwei", PASSWORD)
    assert principal is not None
    token = await sessions.create(principal, "10.1.2.3")
    assert await sessions.resolve(token, "10.1.2.4") == Principal(
        "zhangwei", Role.STAFF, "张伟", "10.1.2.4"
    )


async def test_only_the_sha256_of_a_session_token_is_stored(
    staff: StaffStore, sessions: SessionStore, pool: asyncpg.Pool
) -> None:
    token = await sessions.create(Principal("zhangwei", Role.STAFF, "张伟"), "10.1.2.3")
    row = await pool.fetchrow("SELECT * FROM sessions")
    assert bytes(row["token_hash"]) == hashlib.sha256(token.encode()).digest()
    assert row["remote"] == "10.1.2.3"
    assert all(token not in str(value) for value in row.values())


async def test_session_tokens_are_long_and_different(
    staff: StaffStore, sessions: SessionStore
) -> None:
    principal = Principal("zhangwei", Role.STAFF, "张伟")
    first, second = [await sessions.create(principal, None) for _ in range(2)]
    assert first != second
    assert len(first) >= 43


async def test_a_session_lasts_its_ttl(staff: StaffStore, pool: asyncpg.Pool) -> None:
    await SessionStore(pool, ttl=timedelta(hours=2)).create(
        Principal("zhangwei", Role.STAFF, "张伟"), None
    )
    lasts = await pool.fetchval("SELECT expires_at - created_at FROM sessions")
    assert lasts == timedelta(hours=2)


async def test_an_expired_session_is_refused(
    staff: StaffStore, sessions: SessionStore, pool: asyncpg.Pool
) -> None:
    token = await sessions.create(Principal("zhangwei", Role.STAFF, "张伟"), None)
    await pool.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert await sessions.resolve(token) is None


async def test_a_revoked_session_is_refused(staff: StaffStore, sessions: SessionStore) -> None:
    token = await sessions.create(Principal("zhangwei", Role.STAFF, "张伟"), None)
    assert await sessions.revoke(token)
    assert await sessions.resolve(token) is None
    assert not await sessions.revoke(token)


async def test_deactivating_staff_ends_their_sessions(
    staff: StaffStore, sessions: SessionStore, pool: asyncpg.Pool
) -> None:
    token = await sessions.create(Principal("zhangwei", Role.STAFF, "张伟"), None)
    await pool.execute("UPDATE staff SET active = false WHERE id = 'zhangwei'")
    assert await sessions.resolve(token) is None


async def test_an_unknown_session_token_is_refused(sessions: SessionStore) -> None:
    assert await sessions.resolve("no-such-token") is None


async def test_backend_and_devices_get_no_sessions(sessions: SessionStore) -> None:
    with pytest.raises(ValueError, match="configured tokens"):
        await sessions.create(Principal("approval-backend", Role.BACKEND, "backend"), None)


async def test_purging_drops_only_expired_sessions(
    staff: StaffStore, sessions: SessionStore, pool: asyncpg.Pool
) -> None:
    principal = Principal("zhangwei", Role.STAFF, "张伟")
    expired = await sessions.create(principal, None)
    live = await sessions.create(principal, None)
    await pool.execute(
        "UPDATE sessions SET expires_at = now() - interval '1 hour' WHERE token_hash = $1",
        hashlib.sha256(expired.encode()).digest(),
    )
    assert await sessions.purge_expired() == 1
    assert await sessions.resolve(live) is not None


# --- Configured tokens -------------------------------------------------------------


def test_configured_tokens_resolve_to_backend_and_device_principals(tokens: TokenTable) -> None:
    assert tokens.resolve(BACKEND_TOKEN, "10.0.0.1") == Principal(
        "approval-backend", Role.BACKEND, "approval-backend", "10.0.0.1"
    )
    device = tokens.resolve(DEVICE_TOKEN)
    assert device is not None
    assert (device.id, device.role) == ("kiosk-01", Role.DEVICE)


@pytest.mark.parametrize("token", ["unknown", "", token_sha256(BACKEND_TOKEN), BACKEND_TOKEN[:-1]])
def test_an_unknown_token_resolves_to_nobody(tokens: TokenTable, token: str) -> None:
    assert tokens.resolve(token) is None


def test_the_demo_backend_token_is_the_one_its_comment_publishes() -> None:
    table = TokenTable(load_hall_config(DEMO).auth.tokens)
    principal = table.resolve("Yyq9ATyCDPgyMs0tyGwwixOAAXKVRb5YJJ3a5mEdqiw")
    assert principal is not None
    assert principal.role is Role.BACKEND


# --- Middleware and require() ----------------------------------------------------------


async def whoami(request: web.Request) -> web.Response:
    principal = request[PRINCIPAL]
    if principal is None:
        return web.json_response({"anonymous": True})
    return web.json_response(
        {"id": principal.id, "role": principal.role, "remote": principal.remote}
    )


async def console(request: web.Request) -> web.Response:
    principal = require(request, Role.MANAGER, Role.ADMIN)
    return web.json_response({"id": principal.id})


async def anyone_signed_in(request: web.Request) -> web.Response:
    return web.json_response({"id": require(request).id})


async def backend_only(request: web.Request) -> web.Response:
    await authorize(request, ("backend",))
    return web.Response(text="ok")


Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(sessions: SessionStore, tokens: TokenTable) -> AsyncIterator[Client]:
    app = web.Application(middlewares=[auth_middleware(Authenticator(sessions, tokens))])
    app.router.add_get("/whoami", whoami)
    app.router.add_get("/console", console)
    app.router.add_get("/signed-in", anyone_signed_in)
    app.router.add_get("/backend-only", backend_only)
    async with TestClient(TestServer(app)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_request_without_credentials_is_anonymous(client: Client) -> None:
    response = await client.get("/whoami")
    assert response.status == 200
    assert await response.json() == {"anonymous": True}


@pytest.mark.parametrize(
    "header",
    ["Basic emhhbmd3ZWk6cGFzcw==", "Bearer", "Bearer ", "Bearer two tokens", BACKEND_TOKEN],
)
async def test_a_malformed_authorization_header_is_refused(client: Client, header: str) -> None:
    response = await client.get("/whoami", headers={"Authorization": header})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_the_bearer_scheme_is_case_insensitive(client: Client) -> None:
    response = await client.get("/whoami", headers={"Authorization": f"bearer {BACKEND_TOKEN}"})
    assert (await response.json())["id"] == "approval-backend"


async def test_a_session_token_identifies_staff_and_where_they_are(
    client: Client, staff: StaffStore, sessions: SessionStore
) -> None:
    token = await sessions.create(Principal("zhangwei", Role.STAFF, "张伟"), None)
    response = await client.get("/whoami", headers=bearer(token))
    assert await response.json() == {"id": "zhangwei", "role": "staff", "remote": "127.0.0.1"}


async def test_an_unknown_token_leaves_public_endpoints_open(client: Client) -> None:
    response = await client.get("/whoami", headers=bearer("unknown"))
    assert await response.json() == {"anonymous": True}


async def test_require_refuses_an_anonymous_caller_with_401(client: Client) -> None:
    response = await client.get("/signed-in")
    assert response.status == 401
    assert await response.text() == "authentication required"
    assert "WWW-Authenticate" in response.headers


async def test_require_refuses_an_unknown_token_with_401(client: Client) -> None:
    response = await client.get("/signed-in", headers=bearer("unknown"))
    assert response.status == 401
    assert await response.text() == "invalid or expired token"


async def test_require_refuses_the_wrong_role_with_403(
    client: Client, staff: StaffStore, sessions: SessionStore
) -> None:
    token = await sessions.create(Principal("zhangwei", Role.STAFF, "张伟"), None)
    for credentials in (token, BACKEND_TOKEN):
        response = await client.get("/console", headers=bearer(credentials))
        assert response.status == 403
        assert await response.text() == "needs role manager or admin"


async def test_require_admits_a_listed_role(
    client: Client, staff: StaffStore, sessions: SessionStore
) -> None:
    await staff.add("liuyang", "刘洋", Role.MANAGER, PASSWORD)
    principal = await staff.authenticate("liuyang", PASSWORD)
    assert principal is not None
    token = await sessions.create(principal, None)
    response = await client.get("/console", headers=bearer(token))
    assert response.status == 200
    assert await response.json() == {"id": "liuyang"}


async def test_require_without_roles_admits_any_signed_in_caller(client: Client) -> None:
    response = await client.get("/signed-in", headers=bearer(DEVICE_TOKEN))
    assert await response.json() == {"id": "kiosk-01"}


async def test_require_without_the_middleware_is_a_programming_error() -> None:
    async def handler(request: web.Request) -> web.Response:
        require(request)
        return web.Response()

    app = web.Application()
    app.router.add_get("/", handler)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/")
        assert response.status == 500


async def test_the_router_hook_admits_and_refuses_by_role_names(client: Client) -> None:
    allowed = await client.get("/backend-only", headers=bearer(BACKEND_TOKEN))
    refused = await client.get("/backend-only", headers=bearer(DEVICE_TOKEN))
    assert (allowed.status, refused.status) == (200, 403)
