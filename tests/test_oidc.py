"""Staff login through OpenID Connect (G3), against a fake provider served on
127.0.0.1 and a real PostgreSQL.

The fake provider is small but strict where the hall could go wrong: it checks
the client's authentication, the PKCE verifier and the redirect URI, and signs
ID tokens with RS256; each test bends one thing it does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import unquote

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from yarl import URL

from hall.audit import AuditLog
from hall.auth import Principal, Role, SessionStore
from hall.config import OidcConfig
from hall.oidc import (
    BINDING_COOKIE,
    CALLBACK_PATH,
    START_PATH,
    OidcLogin,
    PendingLogins,
    add_oidc_routes,
    staff_role,
)

CLIENT_ID = "smarthall-jiangyang"
SECRET = "s3cret-for-tests"
SECRET_ENV = "HALL_TEST_OIDC_SECRET"
REDIRECT_URL = "http://127.0.0.1:8080/console/oidc"
"""A console page, which passes the query on to the callback; never fetched here."""
SUBJECT = "u-1001"

Client = TestClient[web.Request, web.Application]


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})


@pytest.fixture(scope="module")
def other_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})


@dataclass
class FakeProvider:
    """An OpenID provider in miniature: discovery, JWKS, an authorization
    endpoint that approves at once, and a token endpoint."""

    key: RSAKey
    issuer: str = ""
    subject: str = SUBJECT
    extra_claims: dict[str, Any] = field(default_factory=dict)
    """Claims added to or replacing the right ones in the next ID tokens."""
    sign_with: RSAKey | None = None
    """Another key to sign with, as an impostor would."""
    auth_methods: list[str] = field(default_factory=lambda: ["client_secret_basic"])
    discovered_issuer: str | None = None
    token_status: int = 200
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.discovered_issuer or self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": self.auth_methods,
            }
        )

    async def jwks(self, request: web.Request) -> web.Response:
        return web.json_response(KeySet([self.key]).as_dict(private=False))

    async def authorize(self, request: web.Request) -> web.Response:
        query = request.query
        assert query["response_type"] == "code"
        assert query["client_id"] == CLIENT_ID
        assert query["code_challenge_method"] == "S256"
        code = f"code-{len(self.codes)}"
        self.codes[code] = {
            "nonce": query["nonce"],
            "challenge": query["code_challenge"],
            "redirect_uri": query["redirect_uri"],
        }
        back = URL(query["redirect_uri"]).update_query(code=code, state=query["state"])
        raise web.HTTPFound(back)

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_requests.append(form)
        if self.token_status != 200:
            return web.Response(status=self.token_status, text="down for maintenance")
        if self._client_of(request, form) != (CLIENT_ID, SECRET):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.codes.pop(form.get("code", ""), None)
        if (
            grant is None
            or form.get("redirect_uri") != grant["redirect_uri"]
            or create_s256_code_challenge(form.get("code_verifier", "")) != grant["challenge"]
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response(
            {"access_token": "at-1", "token_type": "Bearer", "id_token": self.id_token(grant)}
        )

    def id_token(self, grant: dict[str, str]) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": self.subject,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
        } | self.extra_claims
        key = self.sign_with or self.key
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

    def _client_of(self, request: web.Request, form: dict[str, str]) -> tuple[str, str]:
        if "client_secret_post" in self.auth_methods:
            return form.get("client_id", ""), form.get("client_secret", "")
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return "", ""
        basic = aiohttp.BasicAuth.decode(header)
        return unquote(basic.login), unquote(basic.password)


@pytest.fixture
async def provider_server(signing_key: RSAKey) -> AsyncIterator[tuple[FakeProvider, TestServer]]:
    provider = FakeProvider(signing_key)
    server = TestServer(provider.app(), host="127.0.0.1")
    await server.start_server()
    provider.issuer = f"http://127.0.0.1:{server.port}"
    try:
        yield provider, server
    finally:
        await server.close()


@pytest.fixture
def provider(provider_server: tuple[FakeProvider, TestServer]) -> FakeProvider:
    return provider_server[0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def config(provider: FakeProvider) -> OidcConfig:
    return OidcConfig(
        issuer=provider.issuer,
        client_id=CLIENT_ID,
        client_secret_env=SECRET_ENV,
        redirect_url=REDIRECT_URL,
    )


@pytest.fixture
async def staff(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO staff (id, name, role, oidc_subject) VALUES ('zhangwei', '张伟', 'staff', $1)",
        SUBJECT,
    )


async def serve(login: OidcLogin) -> Client:
    app = web.Application()
    add_oidc_routes(app, login)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def hall(
    config: OidcConfig,
    pool: asyncpg.Pool,
    clock: FakeClock,
    staff: None,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Client]:
    monkeypatch.setenv(SECRET_ENV, SECRET)
    login = OidcLogin(
        config,
        pool,
        SessionStore(pool),
        AuditLog(pool, "test-hall"),
        pending=PendingLogins(clock=clock),
    )
    client = await serve(login)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def approve(hall: Client, browser: aiohttp.ClientSession) -> dict[str, str]:
    """Start a login and let the provider approve it: the query string the
    provider sends the browser back with."""
    start = await hall.get(START_PATH, allow_redirects=False)
    assert start.status == 302, await start.text()
    async with browser.get(start.headers["Location"], allow_redirects=False) as answer:
        assert answer.status == 302
        back = URL(answer.headers["Location"])
    assert str(back.with_query(None)) == REDIRECT_URL
    return dict(back.query)


async def log_in(hall: Client, browser: aiohttp.ClientSession) -> aiohttp.ClientResponse:
    return await hall.get(CALLBACK_PATH, params=await approve(hall, browser))


async def problem_code(response: aiohttp.ClientResponse, status: int) -> str:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    document = await response.json(content_type=None)
    assert document["status"] == status
    return str(document["code"])


# --- Logging in ------------------------------------------------------------------


async def test_start_sends_the_browser_to_the_provider_with_state_nonce_and_pkce(
    hall: Client, provider: FakeProvider
) -> None:
    response = await hall.get(START_PATH, allow_redirects=False)
    assert response.status == 302
    assert response.headers["Cache-Control"] == "no-store"
    location = URL(response.headers["Location"])
    assert str(location.with_query(None)) == f"{provider.issuer}/authorize"
    query = location.query
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == REDIRECT_URL
    assert query["scope"] == "openid profile"
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
    assert len(query["code_challenge"]) == 43


async def test_start_binds_the_login_to_the_browser_with_a_short_lived_cookie(
    hall: Client,
) -> None:
    response = await hall.get(START_PATH, allow_redirects=False)
    cookie = response.cookies[BINDING_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert cookie["path"] == "/api/v1/auth/oidc"
    assert cookie["max-age"] == "600"
    assert not cookie["secure"], "the test hall's redirect_url is plain http"


async def test_the_cookie_is_secure_when_the_hall_is_reached_over_https(
    config: OidcConfig, pool: asyncpg.Pool
) -> None:
    config = replace(config, redirect_url="https://hall.example/console/oidc")
    hall = await serve(OidcLogin(config, pool, SessionStore(pool), client_secret=SECRET))
    try:
        response = await hall.get(START_PATH, allow_redirects=False)
        assert response.cookies[BINDING_COOKIE]["secure"]
    finally:
        await hall.close()


async def test_a_known_subject_logs_in_and_gets_a_working_session(
    hall: Client,
    browser: aiohttp.ClientSession,
    pool: asyncpg.Pool,
) -> None:
    response = await log_in(hall, browser)
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert {key: body[key] for key in ("staff_id", "role", "name")} == {
        "staff_id": "zhangwei",
        "role": "staff",
        "name": "张伟",
    }
    assert await SessionStore(pool).resolve(body["token"]) == Principal(
        "zhangwei", Role.STAFF, "张伟"
    )
    audit = await AuditLog(pool, "test-hall").recent()
    assert [(row["actor"], row["action"]) for row in audit] == [("zhangwei", "auth.login")]


async def test_the_token_request_proves_the_client_and_the_pkce_verifier(
    hall: Client,
    browser: aiohttp.ClientSession,
    provider: FakeProvider,
) -> None:
    """The fake provider refuses otherwise; here, that the secret stays out of the form."""
    assert (await log_in(hall, browser)).status == 200
    [form] = provider.token_requests
    assert form["grant_type"] == "authorization_code"
    assert form["redirect_uri"] == REDIRECT_URL
    assert "client_secret" not in form


async def test_the_secret_goes_in_the_form_for_a_provider_that_only_takes_that(
    hall: Client,
    browser: aiohttp.ClientSession,
    provider: FakeProvider,
) -> None:
    provider.auth_methods = ["client_secret_post"]
    assert (await log_in(hall, browser)).status == 200


async def test_an_unknown_subject_is_refused_and_no_account_is_made(
    hall: Client,
    browser: aiohttp.ClientSession,
    provider: FakeProvider,
    pool: asyncpg.Pool,
) -> None:
    provider.subject = "u-9999"
    assert await problem_code(await log_in(hall, browser), 403) == "oidc_unknown_staff"
    assert await pool.fetchval("SELECT count(*) FROM staff") == 1
    assert await pool.fetchval("SELECT count(*) FROM sessions") == 0


async def test_an_inactive_account_is_refused_like_an_unknown_one(
    hall: Client,
    browser: aiohttp.ClientSession,
    pool: asyncpg.Pool,
) -> None:
    await pool.execute("UPDATE staff SET active = false")
    assert await problem_code(await log_in(hall, browser), 403) == "oidc_unknown_staff"


async def test_the_configured_claim_names_the_subject(
    config: OidcConfig,
    pool: asyncpg.Pool,
    staff: None,
    provider: FakeProvider,
    browser: aiohttp.ClientSession,
) -> None:
    provider.extra_claims = {"employee_no": SUBJECT}
    provider.subject = "opaque-pairwise-id"
    config = replace(config, staff_claim="employee_no")
    hall = await serve(OidcLogin(config, pool, SessionStore(pool), client_secret=SECRET))
    try:
        response = await log_in(hall, browser)
        assert response.status == 200, await response.text()
    finally:
        await hall.close()


# --- The ID token ------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"nonce": "not-the-one-sent"}, id="wrong nonce"),
        pytest.param({"aud": "another-client"}, id="wrong audience"),
        pytest.param({"iss": "https://impostor.example"}, id="wrong issuer"),
        pytest.param({"exp": int(time.time()) - 600}, id="expired"),
    ],
)
async def test_an_id_token_with_a_wrong_claim_is_refused(
    hall: Client,
    browser: aiohttp.ClientSession,
    provider: FakeProvider,
    claims: dict[str, Any],
) -> None:
    provider.extra_claims = claims
    assert await problem_code(await log_in(hall, browser), 401) == "oidc_invalid_token"


async def test_an_id_token_signed_by_another_key_is_refused(
    hall: Client,
    browser: aiohttp.ClientSession,
    provider: FakeProvider,
    other_key: RSAKey,
) -> None:
    provider.sign_with = other_key
    assert await problem_code(await log_in(hall, browser), 401) == "oidc_invalid_token"


async def test_keys_rotated_at_the_provider_are_fetched_again(
    hall: Client,
    browser: aiohttp.ClientSession,
    provider: FakeProvider,
) -> None:
    assert (await log_in(hall, browser)).status == 200
    provider.key = RSAKey.generate_key(2048, parameters={"kid": "k2", "use": "sig"})
    response = await log_in(hall, browser)
    assert response.status == 200, await response.text()


# --- State -------------------------------------------------------------------------


async def test_a_replayed_callback_is_refused(hall: Client, browser: aiohttp.ClientSession) -> None:
    query = await approve(hall, browser)
    assert (await hall.get(CALLBACK_PATH, params=query)).status == 200
    replay = await hall.get(CALLBACK_PATH, params=query)
    assert await problem_code(replay, 400) == "oidc_bad_state"


async def test_an_unknown_state_is_refused(hall: Client, browser: aiohttp.ClientSession) -> None:
    query = await approve(hall, browser)
    forged = await hall.get(CALLBACK_PATH, params={**query, "state": "made-up"})
    assert await problem_code(forged, 400) == "oidc_bad_state"


async def test_a_callback_in_another_browser_is_refused(
    hall: Client, browser: aiohttp.ClientSession
) -> None:
    """A colleague sent the link to someone else's login (login CSRF)."""
    query = await approve(hall, browser)
    hall.session.cookie_jar.clear()
    response = await hall.get(CALLBACK_PATH, params=query)
    assert await problem_code(response, 400) == "oidc_bad_state"


async def test_a_login_left_too_long_at_the_provider_is_refused(
    hall: Client,
    browser: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    query = await approve(hall, browser)
    clock.now += 601
    late = await hall.get(CALLBACK_PATH, params=query)
    assert await problem_code(late, 400) == "oidc_bad_state"


def test_logins_in_progress_are_bounded_dropping_the_oldest(clock: FakeClock) -> None:
    pending = PendingLogins(capacity=3, clock=clock)
    states = [pending.open()[0] for _ in range(4)]
    assert len(pending) == 3
    assert pending.take(states[0]) is None
    assert pending.take(states[3]) is not None


def test_expired_logins_make_room_before_live_ones_are_dropped(clock: FakeClock) -> None:
    pending = PendingLogins(ttl=10, capacity=2, clock=clock)
    old, _ = pending.open()
    clock.now += 5
    live, _ = pending.open()
    clock.now += 6
    pending.open()
    assert len(pending) == 2
    assert pending.take(old) is None
    assert pending.take(live) is not None


# --- The provider ------------------------------------------------------------------


async def test_a_provider_that_is_down_gives_a_provider_error(
    hall: Client,
    provider_server: tuple[FakeProvider, TestServer],
) -> None:
    await provider_server[1].close()
    response = await hall.get(START_PATH, allow_redirects=False)
    assert await problem_code(response, 502) == "oidc_provider_error"


async def test_a_failing_token_endpoint_gives_a_provider_error(
    hall: Client,
    browser: aiohttp.ClientSession,
    provider: FakeProvider,
) -> None:
    provider.token_status = 503
    assert await problem_code(await log_in(hall, browser), 502) == "oidc_provider_error"


async def test_a_login_the_provider_denied_is_refused(
    hall: Client, browser: aiohttp.ClientSession
) -> None:
    query = await approve(hall, browser)
    denied = {"state": query["state"], "error": "access_denied"}
    response = await hall.get(CALLBACK_PATH, params=denied)
    assert await problem_code(response, 401) == "oidc_provider_error"


async def test_a_wrong_client_secret_is_refused_by_the_provider(
    config: OidcConfig,
    pool: asyncpg.Pool,
    staff: None,
    browser: aiohttp.ClientSession,
) -> None:
    login = OidcLogin(config, pool, SessionStore(pool), client_secret="not-" + SECRET)
    hall = await serve(login)
    try:
        assert await problem_code(await log_in(hall, browser), 401) == "oidc_provider_error"
    finally:
        await hall.close()


async def test_a_discovery_document_for_another_issuer_is_refused(
    hall: Client, provider: FakeProvider
) -> None:
    provider.discovered_issuer = "https://impostor.example"
    response = await hall.get(START_PATH, allow_redirects=False)
    assert await problem_code(response, 502) == "oidc_provider_error"


# --- Roles from the provider -------------------------------------------------------


async def test_the_role_claim_sets_the_accounts_role(
    config: OidcConfig,
    pool: asyncpg.Pool,
    staff: None,
    provider: FakeProvider,
    browser: aiohttp.ClientSession,
) -> None:
    provider.extra_claims = {"hall_roles": ["employee", "manager"]}
    config = replace(config, role_claim="hall_roles")
    audit = AuditLog(pool, "test-hall")
    hall = await serve(OidcLogin(config, pool, SessionStore(pool), audit, client_secret=SECRET))
    try:
        body = await (await log_in(hall, browser)).json()
    finally:
        await hall.close()
    assert body["role"] == "manager"
    assert await pool.fetchval("SELECT role FROM staff WHERE id = 'zhangwei'") == "manager"
    change = (await audit.recent())[1]
    assert (change["action"], change["detail"]) == (
        "staff.role",
        {"from": "staff", "to": "manager", "by": "oidc"},
    )


@pytest.mark.parametrize(
    ("claimed", "role"),
    [
        ("admin", Role.ADMIN),
        (["staff"], Role.STAFF),
        (["staff", "manager"], None),
        ("root", None),
        (None, None),
        ([{"role": "admin"}], None),
    ],
)
def test_a_role_claim_must_name_exactly_one_staff_role(claimed: object, role: Role | None) -> None:
    assert staff_role(claimed) is role


# --- Setting up ----------------------------------------------------------------------


def test_a_missing_secret_variable_fails_at_start_up(
    config: OidcConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with pytest.raises(ValueError, match=SECRET_ENV):
        OidcLogin(config, None, None)  # type: ignore[arg-type]
