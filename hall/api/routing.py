"""Typed REST routes: declare the input and output models once, get parsing,
validation, problem answers and the OpenAPI description from the same place.

A route is declared on an :class:`Api` registry and its handler receives the
request plus already-validated arguments::

    api = Api(prefix="/api/v1", title="SmartHall", version="1")

    @api.post("/windows/{window_id}/call-next", body=CallNext, response=TicketOut,
              roles=("staff",), summary="Call the next ticket", tags=("windows",))
    async def call_next(request: web.Request, window_id: str, body: CallNext) -> TicketOut:
        ...

    api.setup(app)   # adds the routes, GET /api/v1/openapi.json and problem_middleware

Keyword arguments the handler gets: every ``{name}`` of the path (a ``str``),
``body`` when ``body=`` is given, ``query`` when ``query=`` is given. Checked when
the route is declared, so a mismatch fails at import, not at the first request.

The handler returns a pydantic model, a dict, a list (sent as JSON with the
declared ``status``; checked against ``response=`` when given), ``None`` (204),
or any ``web.StreamResponse`` as an escape hatch for headers or other formats.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import UnionType
from typing import Any, TypedDict, TypeVar, Union, Unpack, get_args, get_origin

import pydantic_core
from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, TypeAdapter, ValidationError

from hall.api.openapi import build_document
from hall.api.problems import (
    Problem,
    field_issues,
    invalid_json_problem,
    is_invalid_json,
    problem_middleware,
    validation_problem,
)

Authorize = Callable[[web.Request, tuple[str, ...]], Awaitable[None]]
"""Checks the caller may use a route with these roles; raises (HTTPUnauthorized,
HTTPForbidden, Problem) to refuse. The server plugs in its authentication here."""

HandlerT = TypeVar("HandlerT", bound=Callable[..., Awaitable[object]])
M = TypeVar("M", bound=BaseModel)

AUTHORIZE = web.AppKey[Authorize]("api_authorize")
DEFAULT_MAX_BODY = 64 * 1024
CHUNK = 16 * 1024
RESERVED = frozenset({"request", "body", "query"})
SEQUENCES = (list, tuple, set, frozenset)
PATH_PARAM = re.compile(
    r"\{(?P<name>[_a-zA-Z][_a-zA-Z0-9]*)(?::(?P<pattern>(?:[^{}]|\{[^{}]*\})*))?\}"
)


class RouteOptions(TypedDict, total=False):
    """What a route declares besides method and path; all optional."""

    body: type[BaseModel]
    query: type[BaseModel]
    response: Any
    status: int
    roles: Sequence[str]
    summary: str
    tags: Sequence[str]
    operation_id: str
    max_body: int


@dataclass(frozen=True)
class PathParam:
    name: str
    pattern: str | None


@dataclass(frozen=True)
class Route:
    """One declared operation; the OpenAPI builder reads these."""

    method: str
    path: str
    handler: Callable[..., Awaitable[object]]
    operation_id: str
    params: tuple[PathParam, ...]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status: int = 200
    roles: tuple[str, ...] = ()
    summary: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    max_body: int = DEFAULT_MAX_BODY

    @property
    def openapi_path(self) -> str:
        """The path without aiohttp's ``{name:regex}`` patterns, as OpenAPI writes it."""
        return PATH_PARAM.sub(lambda match: "{" + match["name"] + "}", self.path)

    @property
    def kwargs(self) -> frozenset[str]:
        names = {param.name for param in self.params}
        names |= {"body"} if self.body is not None else set()
        names |= {"query"} if self.query is not None else set()
        return frozenset(names)


class Api:
    """A registry of typed routes under one prefix, with one OpenAPI document."""

    def __init__(
        self,
        prefix: str = "/api/v1",
        *,
        title: str,
        version: str,
        description: str | None = None,
        authorize: Authorize | None = None,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.prefix = prefix.rstrip("/")
        self.title = title
        self.version = version
        self.description = description
        self.authorize = authorize
        self.max_body = max_body
        self._routes: list[Route] = []

    @property
    def routes(self) -> tuple[Route, ...]:
        return tuple(self._routes)

    @property
    def openapi_url(self) -> str:
        return f"{self.prefix}/openapi.json"

    def route(
        self, method: str, path: str, **options: Unpack[RouteOptions]
    ) -> Callable[[HandlerT], HandlerT]:
        """Decorator declaring ``handler`` as the operation ``method path``."""

        def register(handler: HandlerT) -> HandlerT:
            self._add(self._make_route(method, path, handler, options))
            return handler

        return register

    def get(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        return self.route("PUT", path, **options)

    def patch(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        return self.route("PATCH", path, **options)

    def delete(self, path: str, **options: Unpack[RouteOptions]) -> Callable[[HandlerT], HandlerT]:
        return self.route("DELETE", path, **options)

    def openapi(self) -> dict[str, Any]:
        return build_document(self)

    def setup(self, app: web.Application, *, authorize: Authorize | None = None) -> None:
        """Add every route and the OpenAPI document to ``app``.

        Also puts :func:`problem_middleware` first among the app's middlewares
        unless it is already there, so errors from auth middlewares become
        problems too. ``authorize`` overrides the registry's hook for this app
        only, which lets tests and servers share one module-level ``api``.
        """
        if problem_middleware not in app.middlewares:
            app.middlewares.insert(0, problem_middleware)
        if authorize is not None:
            app[AUTHORIZE] = authorize
        for route in self._routes:
            app.router.add_route(route.method, route.path, self._endpoint(route))
        app.router.add_get(self.openapi_url, self._openapi_endpoint())

    def _make_route(
        self, method: str, path: str, handler: HandlerT, options: RouteOptions
    ) -> Route:
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")
        roles = options.get("roles", ())
        route = Route(
            method=method.upper(),
            path=self.prefix + path,
            handler=handler,
            operation_id=options.get("operation_id", handler.__name__),
            params=_path_params(path),
            body=options.get("body"),
            query=options.get("query"),
            response=options.get("response"),
            status=options.get("status", 200),
            roles=(roles,) if isinstance(roles, str) else tuple(roles),
            summary=options.get("summary"),
            description=inspect.getdoc(handler),
            tags=tuple(options.get("tags", ())),
            max_body=options.get("max_body", self.max_body),
        )
        _check_handler(route)
        return route

    def _add(self, route: Route) -> None:
        for known in self._routes:
            if known.operation_id == route.operation_id:
                raise ValueError(f"operation id {route.operation_id!r} is declared twice")
            if (known.method, known.openapi_path) == (route.method, route.openapi_path):
                raise ValueError(f"{route.method} {route.path} is declared twice")
        self._routes.append(route)

    def _endpoint(self, route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        adapter = TypeAdapter[Any](route.response) if route.response is not None else None

        async def endpoint(request: web.Request) -> web.StreamResponse:
            if route.roles:
                await self._authorize(request, route.roles)
            kwargs = await _arguments(route, request)
            result = await route.handler(request, **kwargs)
            return _respond(route, adapter, result)

        return endpoint

    async def _authorize(self, request: web.Request, roles: tuple[str, ...]) -> None:
        authorize = request.config_dict.get(AUTHORIZE, self.authorize)
        if authorize is not None:
            await authorize(request, roles)

    def _openapi_endpoint(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        body = pydantic_core.to_json(self.openapi(), indent=2)

        async def openapi_json(request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, content_type="application/json")

        return openapi_json


def _path_params(path: str) -> tuple[PathParam, ...]:
    params = tuple(PathParam(m["name"], m["pattern"]) for m in PATH_PARAM.finditer(path))
    clash = RESERVED & {param.name for param in params}
    if clash:
        raise ValueError(f"path parameters may not be named {sorted(clash)}: {path!r}")
    return params


def _check_handler(route: Route) -> None:
    """Fail at declaration, not at the first request, when handler and route disagree."""
    handler = route.handler
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"{handler.__qualname__} must be an async function")
    try:
        inspect.signature(handler).bind(None, **dict.fromkeys(route.kwargs))
    except TypeError as error:
        expected = ", ".join(["request", *sorted(route.kwargs)])
        raise TypeError(
            f"{handler.__qualname__} must accept ({expected}) for {route.path}: {error}"
        ) from error


async def _arguments(route: Route, request: web.Request) -> dict[str, Any]:
    """Path parameters, query and body, with all field errors gathered into one 422."""
    kwargs: dict[str, Any] = {param.name: request.match_info[param.name] for param in route.params}
    issues: list[dict[str, Any]] = []
    if route.query is not None:
        kwargs["query"] = _parse_query(route.query, request.query, issues)
    if route.body is not None:
        raw = await read_body(request, route.max_body)
        kwargs["body"] = _parse_body(route.body, raw, issues)
    if issues:
        raise validation_problem(issues)
    return kwargs


async def read_body(request: web.Request, limit: int) -> bytes:
    """At most ``limit`` bytes, refused early by Content-Length and enforced while
    streaming, so a chunked upload cannot make the server buffer more."""
    length = request.content_length
    if length is not None and length > limit:
        raise _too_large(limit)
    body = bytearray()
    async for chunk in request.content.iter_chunked(CHUNK):
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> Problem:
    detail = f"The body may be at most {limit} bytes"
    return Problem(413, "payload_too_large", "Payload too large", detail, max_bytes=limit)


def _parse_body(model: type[M], raw: bytes, issues: list[dict[str, Any]]) -> M | None:
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        if is_invalid_json(error):
            raise invalid_json_problem(error.errors(include_url=False)[0]["msg"]) from None
        issues.extend(field_issues(error, "body"))
        return None


def _parse_query(
    model: type[M], query: MultiMapping[str], issues: list[dict[str, Any]]
) -> M | None:
    try:
        return model.model_validate(_query_data(model, query))
    except ValidationError as error:
        issues.extend(field_issues(error, "query"))
        return None


def _query_data(model: type[BaseModel], query: MultiMapping[str]) -> dict[str, Any]:
    """Repeated keys become lists for list-typed fields (``?service=A&service=B``);
    for other fields the first value counts."""
    many = _sequence_keys(model)
    return {key: query.getall(key) if key in many else query[key] for key in set(query)}


def _sequence_keys(model: type[BaseModel]) -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        if _is_sequence(field.annotation):
            keys |= {name, field.alias or name}
    return keys


def _is_sequence(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin in (Union, UnionType):
        return any(_is_sequence(arg) for arg in get_args(annotation))
    return origin in SEQUENCES or annotation in SEQUENCES


def _respond(route: Route, adapter: TypeAdapter[Any] | None, result: object) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    if result is None:
        return web.Response(status=204)
    body = _to_json(route, adapter, result)
    return web.Response(status=route.status, body=body, content_type="application/json")


def _to_json(route: Route, adapter: TypeAdapter[Any] | None, result: object) -> bytes:
    """UTF-8 JSON with Chinese text as is. A result that does not fit the declared
    response is the server's bug, so it must become a 500, not the client's 422."""
    if adapter is None:
        return pydantic_core.to_json(result, by_alias=True)
    try:
        value = adapter.validate_python(result)
    except ValidationError as error:
        raise TypeError(
            f"{route.operation_id} returned data unlike its response: {error}"
        ) from error
    return adapter.dump_json(value, by_alias=True)
