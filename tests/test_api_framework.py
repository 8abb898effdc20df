"""The REST framework as a client and a route author meet it: validated input,
JSON output, every failure an RFC 9457 problem with a stable code, and an
OpenAPI document that describes the declared routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, Field

from hall.api import Api, Authorize
from hall.api.problems import PROBLEM_JSON, REASON_STATUS, ProblemDetails
from queueing.errors import Reason, Rejected

Client = TestClient[web.Request, web.Application]


class TakeTicket(BaseModel):
    service: str
    party: int = Field(1, ge=1)


class TicketOut(BaseModel):
    number: str
    service: str


class PauseBody(BaseModel):
    reason: str


class Listing(BaseModel):
    state: list[str] = []
    limit: int = 10


SECRET = "password=hunter2 at db.internal"

api = Api(prefix="/api/v1", title="Demo hall", version="test", max_body=1024)


@api.post(
    "/tickets",
    body=TakeTicket,
    response=TicketOut,
    status=201,
    summary="Take a ticket",
    tags=("tickets",),
)
async def take_ticket(request: web.Request, body: TakeTicket) -> TicketOut:
    return TicketOut(number="A001", service=body.service)


@api.get("/windows/{window_id}/tickets", query=Listing, tags=("windows",))
async def window_tickets(request: web.Request, window_id: str, query: Listing) -> dict[str, Any]:
    return {"window": window_id, "state": query.state, "limit": query.limit}


@api.post("/windows/{window_id}/pause", body=PauseBody, roles=("staff",), status=204)
async def pause_window(request: web.Request, window_id: str, body: PauseBody) -> None:
    return None


@api.post("/services/{service_id}/quota", response=TicketOut)
async def exhausted_quota(request: web.Request, service_id: str) -> TicketOut:
    raise Rejected(Reason.QUOTA_EXHAUSTED, f"{service_id} has given all of today's tickets")


@api.get("/boom")
async def boom(request: web.Request) -> None:
    raise RuntimeError(SECRET)


@api.get("/misshapen", response=TicketOut)
async def misshapen(request: web.Request) -> dict[str, Any]:
    return {"number": "A001"}


@api.get("/moved")
async def moved(request: web.Request) -> None:
    raise web.HTTPFound("/api/v1/tickets")


@asynccontextmanager
async def serve(authorize: Authorize | None = None) -> AsyncIterator[Client]:
    app = web.Application()
    api.setup(app, authorize=authorize)
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with serve() as client:
        yield client


async def problem_of(response: Any) -> ProblemDetails:
    assert response.content_type == PROBLEM_JSON
    return ProblemDetails.model_validate(await response.json(content_type=PROBLEM_JSON))


def refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(document: dict[str, Any], ref: str) -> object:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


async def test_a_valid_body_gives_the_declared_status_and_json(client: Client) -> None:
    response = await client.post("/api/v1/tickets", json={"service": "户籍"})

    assert response.status == 201
    assert await response.json() == {"number": "A001", "service": "户籍"}


async def test_json_answers_carry_chinese_text_unescaped(client: Client) -> None:
    response = await client.post("/api/v1/tickets", json={"service": "户籍"})

    assert "户籍".encode() in await response.read()


async def test_a_missing_field_is_a_422_problem_naming_the_field(client: Client) -> None:
    response = await client.post("/api/v1/tickets", json={"party": 2})

    problem = await problem_of(response)
    assert (response.status, problem.code) == (422, "validation_failed")
    assert problem.errors is not None
    assert problem.errors[0].loc == ["body", "service"]


async def test_a_field_of_the_wrong_type_is_a_422_problem(client: Client) -> None:
    response = await client.post("/api/v1/tickets", json={"service": "户籍", "party": "many"})

    problem = await problem_of(response)
    assert (response.status, problem.code) == (422, "validation_failed")
    assert problem.errors is not None
    assert [issue.loc for issue in problem.errors] == [["body", "party"]]


async def test_a_validation_problem_does_not_echo_the_input(client: Client) -> None:
    response = await client.post("/api/v1/tickets", json={"service": 1, "party": "x" * 500})

    assert "x" * 500 not in await response.text()


async def test_malformed_json_is_a_400_invalid_json_problem(client: Client) -> None:
    response = await client.post(
        "/api/v1/tickets", data=b'{"service": ', headers={"Content-Type": "application/json"}
    )

    problem = await problem_of(response)
    assert (response.status, problem.code) == (400, "invalid_json")


async def test_a_body_over_the_limit_is_a_413_problem(client: Client) -> None:
    response = await client.post("/api/v1/tickets", json={"service": "x" * 2000})

    problem = await problem_of(response)
    assert (response.status, problem.code) == (413, "payload_too_large")


async def test_an_unknown_route_is_a_404_problem_naming_the_path(client: Client) -> None:
    response = await client.get("/api/v1/nowhere")

    problem = await problem_of(response)
    assert (response.status, problem.code) == (404, "not_found")
    assert problem.instance == "/api/v1/nowhere"
    assert problem.type == "https://smarthall.dev/problems/not_found"


async def test_a_wrong_method_is_a_405_problem_with_an_allow_header(client: Client) -> None:
    response = await client.delete("/api/v1/tickets")

    problem = await problem_of(response)
    assert (response.status, problem.code) == (405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"


async def test_an_engine_refusal_is_a_problem_with_its_reason_as_code(client: Client) -> None:
    response = await client.post("/api/v1/services/S1/quota")

    problem = await problem_of(response)
    assert (response.status, problem.code) == (409, "quota_exhausted")
    assert problem.detail == "S1 has given all of today's tickets"


def test_every_engine_reason_has_an_http_status() -> None:
    assert set(REASON_STATUS) == set(Reason)


async def test_an_unexpected_error_is_a_500_problem_that_leaks_nothing(client: Client) -> None:
    response = await client.get("/api/v1/boom")

    problem = await problem_of(response)
    assert (response.status, problem.code) == (500, "internal_error")
    assert "hunter2" not in await response.text()


async def test_an_unexpected_error_is_logged_with_its_traceback(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="hall.api"):
        await client.get("/api/v1/boom")

    [record] = caplog.records
    assert record.exc_info is not None
    assert record.exc_info[1] is not None
    assert str(record.exc_info[1]) == SECRET


async def test_a_result_unlike_the_declared_response_is_a_500_not_a_422(client: Client) -> None:
    response = await client.get("/api/v1/misshapen")

    problem = await problem_of(response)
    assert (response.status, problem.code) == (500, "internal_error")


async def test_redirects_raised_by_a_handler_pass_through(client: Client) -> None:
    response = await client.get("/api/v1/moved", allow_redirects=False)

    assert response.status == 302
    assert response.headers["Location"] == "/api/v1/tickets"


async def test_path_parameters_and_the_query_model_reach_the_handler(client: Client) -> None:
    response = await client.get(
        "/api/v1/windows/W7/tickets",
        params=[("state", "waiting"), ("state", "held"), ("limit", "3")],
    )

    assert await response.json() == {"window": "W7", "state": ["waiting", "held"], "limit": 3}


async def test_an_invalid_query_is_a_422_problem_naming_the_parameter(client: Client) -> None:
    response = await client.get("/api/v1/windows/W7/tickets", params={"limit": "lots"})

    problem = await problem_of(response)
    assert problem.errors is not None
    assert problem.errors[0].loc == ["query", "limit"]


async def test_returning_none_is_a_204(client: Client) -> None:
    response = await client.post("/api/v1/windows/W7/pause", json={"reason": "午休"})

    assert response.status == 204


async def test_a_route_with_roles_asks_the_authorize_hook_with_them() -> None:
    asked: list[tuple[str, tuple[str, ...]]] = []

    async def authorize(request: web.Request, roles: tuple[str, ...]) -> None:
        asked.append((request.path, roles))

    async with serve(authorize) as client:
        await client.post("/api/v1/windows/W7/pause", json={"reason": "午休"})

    assert asked == [("/api/v1/windows/W7/pause", ("staff",))]


async def test_a_route_without_roles_does_not_ask_the_authorize_hook() -> None:
    async def authorize(request: web.Request, roles: tuple[str, ...]) -> None:
        raise web.HTTPForbidden()

    async with serve(authorize) as client:
        response = await client.post("/api/v1/tickets", json={"service": "户籍"})

    assert response.status == 201


async def test_a_refusal_by_the_authorize_hook_is_a_403_problem() -> None:
    async def authorize(request: web.Request, roles: tuple[str, ...]) -> None:
        raise web.HTTPForbidden(text="staff only")

    async with serve(authorize) as client:
        response = await client.post("/api/v1/windows/W7/pause", json={"reason": "午休"})
        problem = await problem_of(response)

    assert (response.status, problem.code, problem.detail) == (403, "forbidden", "staff only")


async def test_the_authorize_hook_refuses_before_the_body_is_parsed() -> None:
    async def authorize(request: web.Request, roles: tuple[str, ...]) -> None:
        raise web.HTTPForbidden()

    async with serve(authorize) as client:
        response = await client.post("/api/v1/windows/W7/pause", data=b"not json")

    assert response.status == 403


async def test_an_authentication_challenge_keeps_its_www_authenticate_header() -> None:
    async def authorize(request: web.Request, roles: tuple[str, ...]) -> None:
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": "Bearer"})

    async with serve(authorize) as client:
        response = await client.post("/api/v1/windows/W7/pause", json={"reason": "午休"})
        problem = await problem_of(response)

    assert (response.status, problem.code) == (401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_an_error_after_a_websocket_upgrade_does_not_corrupt_the_socket() -> None:
    async def socket(request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse()
        await websocket.prepare(request)
        await websocket.send_str("hello")
        raise RuntimeError("after the upgrade")

    app = web.Application()
    app.router.add_get("/ws", socket)
    api.setup(app)
    async with TestClient(TestServer(app)) as client, client.ws_connect("/ws") as websocket:
        greeting = await websocket.receive()
        end = await websocket.receive()

    assert (greeting.data, end.type) == ("hello", WSMsgType.CLOSED)


def test_a_handler_not_taking_its_path_parameter_is_refused_when_declared() -> None:
    demo = Api(title="Demo", version="test")

    async def call_next(request: web.Request) -> None:
        return None

    with pytest.raises(TypeError, match="window_id"):
        demo.post("/windows/{window_id}/call-next")(call_next)


async def test_openapi_json_lists_every_declared_operation(client: Client) -> None:
    document = await (await client.get("/api/v1/openapi.json")).json()

    operations = {
        (method.upper(), path): operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert document["openapi"] == "3.1.0"
    assert operations[("POST", "/api/v1/tickets")] == "take_ticket"
    assert operations[("GET", "/api/v1/windows/{window_id}/tickets")] == "window_tickets"
    assert len(operations) == len(api.routes)


def test_every_ref_in_the_openapi_document_resolves() -> None:
    document = api.openapi()

    found = list(refs(document))
    assert found
    for ref in found:
        assert resolve(document, ref) is not None


def test_openapi_describes_path_query_body_and_response() -> None:
    paths = api.openapi()["paths"]

    listing = paths["/api/v1/windows/{window_id}/tickets"]["get"]
    take = paths["/api/v1/tickets"]["post"]
    assert [(p["name"], p["in"]) for p in listing["parameters"]] == [
        ("window_id", "path"),
        ("state", "query"),
        ("limit", "query"),
    ]
    assert take["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TakeTicket"
    }
    assert take["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TicketOut"
    }


def test_openapi_marks_operations_with_roles_as_secured() -> None:
    paths = api.openapi()["paths"]

    pause = paths["/api/v1/windows/{window_id}/pause"]["post"]
    assert pause["security"] == [{"bearer": []}]
    assert pause["x-roles"] == ["staff"]
    assert "security" not in paths["/api/v1/tickets"]["post"]
