"""Every error the REST API gives is an RFC 9457 problem document.

Clients (kiosks, window callers, the approval backend) branch on the stable
``code`` member, never on the English ``title``/``detail`` text, so the code of a
refusal by the engine is exactly its :class:`queueing.errors.Reason` value.

``type`` is the absolute URI ``https://smarthall.dev/problems/<code>``: RFC 9457
recommends absolute URIs so that a problem type means the same thing wherever
the document is copied to; the URI names the type and need not resolve.

The engine's ``bad_request`` maps to 422, like a body that fails validation:
the request was well-formed JSON but its content is unacceptable. 400 is kept
for bodies that are not JSON at all (``invalid_json``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ConfigDict, ValidationError

from queueing.errors import Reason, Rejected

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://smarthall.dev/problems/"
MAX_FIELD_ERRORS = 50
STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "code", "instance"})

REASON_STATUS: Mapping[Reason, int] = {
    Reason.UNKNOWN_SERVICE: 404,
    Reason.UNKNOWN_WINDOW: 404,
    Reason.UNKNOWN_TICKET: 404,
    Reason.UNKNOWN_PAUSE_REASON: 404,
    Reason.BAD_REQUEST: 422,
    Reason.DAY_NOT_STARTED: 409,
    Reason.DAY_ALREADY_STARTED: 409,
    Reason.OUTSIDE_HOURS: 409,
    Reason.NO_OPEN_WINDOW: 409,
    Reason.QUOTA_EXHAUSTED: 409,
    Reason.NOT_LOGGED_IN: 409,
    Reason.ALREADY_LOGGED_IN: 409,
    Reason.STAFF_ELSEWHERE: 409,
    Reason.WINDOW_CLOSED: 409,
    Reason.WINDOW_PAUSED: 409,
    Reason.WINDOW_NOT_PAUSED: 409,
    Reason.WINDOW_BUSY: 409,
    Reason.NO_CURRENT_TICKET: 409,
    Reason.NOTHING_WAITING: 409,
    Reason.TICKET_NOT_WAITING: 409,
    Reason.TICKET_NOT_HELD: 409,
    Reason.TICKET_ALREADY_ENDED: 409,
    Reason.NOT_SERVED_HERE: 409,
    Reason.WRONG_STATE: 409,
}
"""HTTP status of each engine refusal: unknown things are 404, a refusal because
of the hall's current state is 409 (retrying later may succeed), bad content 422."""

HTTP_CODES: Mapping[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_content",
    429: "too_many_requests",
    500: "internal_error",
    503: "service_unavailable",
}
"""Codes for aiohttp's own HTTP errors; pinned here because Python renames some
reason phrases between versions (413, 422) and the codes must not move."""

BODY_HEADERS = frozenset({"content-type", "content-length"})


class FieldIssue(BaseModel):
    """One invalid input field, as listed in a validation problem's ``errors``."""

    loc: list[str | int]
    msg: str
    type: str


class ProblemDetails(BaseModel):
    """The problem document, for the OpenAPI description and for clients' tests."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldIssue] | None = None


class Problem(Exception):
    """Raise anywhere under a request to answer with this problem document.

    Keyword arguments beyond the standard members become extension members
    (e.g. ``errors=[...]``); ``headers`` are sent with the response (Allow,
    WWW-Authenticate, Retry-After) and are not part of the body.
    """

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        clash = STANDARD_MEMBERS & extra.keys()
        if clash:
            raise TypeError(f"extension members clash with standard ones: {sorted(clash)}")
        super().__init__(f"{status} {code}: {detail or title}")
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra

    @property
    def type(self) -> str:
        return TYPE_BASE + self.code

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail is not None:
            document["detail"] = self.detail
        if instance is not None:
            document["instance"] = instance
        return document | self.extra

    def to_response(self, instance: str | None = None) -> web.Response:
        """``default=str`` because an error answer must never fail to serialise."""
        body = json.dumps(self.to_dict(instance), ensure_ascii=False, default=str)
        return web.Response(
            status=self.status,
            text=body,
            content_type=PROBLEM_JSON,
            charset="utf-8",
            headers=self.headers,
        )


def rejected_problem(rejected: Rejected) -> Problem:
    reason = rejected.reason
    title = reason.value.replace("_", " ").capitalize()
    return Problem(REASON_STATUS.get(reason, 409), reason.value, title, rejected.detail)


def field_issues(error: ValidationError, source: str | None = None) -> list[dict[str, Any]]:
    """Where and why, never the input itself: a huge or private payload must not echo back."""
    prefix: list[str | int] = [source] if source else []
    return [
        {"loc": [*prefix, *issue["loc"]], "msg": issue["msg"], "type": issue["type"]}
        for issue in error.errors(include_url=False, include_input=False, include_context=False)
    ]


def is_invalid_json(error: ValidationError) -> bool:
    return any(issue["type"] == "json_invalid" for issue in error.errors(include_url=False))


def invalid_json_problem(detail: str | None = None) -> Problem:
    return Problem(400, "invalid_json", "Body is not valid JSON", detail)


def validation_problem(issues: list[dict[str, Any]]) -> Problem:
    """One 422 listing every invalid field, so a client fixes them all in one go."""
    count = len(issues)
    detail = "1 field is invalid" if count == 1 else f"{count} fields are invalid"
    return Problem(
        422, "validation_failed", "Invalid input", detail, errors=issues[:MAX_FIELD_ERRORS]
    )


def pydantic_problem(error: ValidationError, source: str | None = None) -> Problem:
    if is_invalid_json(error):
        return invalid_json_problem(error.errors(include_url=False)[0]["msg"])
    return validation_problem(field_issues(error, source))


def http_exception_problem(error: web.HTTPException) -> Problem:
    status = error.status
    default_text = f"{status}: {error.reason}"
    detail = error.text if error.text and error.text != default_text else None
    headers = {k: v for k, v in error.headers.items() if k.lower() not in BODY_HEADERS}
    return Problem(status, _http_code(status), error.reason, detail, headers=headers)


def internal_problem() -> Problem:
    return Problem(500, "internal_error", "Internal server error")


def _http_code(status: int) -> str:
    if status in HTTP_CODES:
        return HTTP_CODES[status]
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        return f"http_{status}"
    return "_".join(phrase.lower().replace("-", " ").split())


def to_problem(error: Exception) -> Problem | None:
    """The problem an exception stands for, or None for a bug (an unexpected error)."""
    if isinstance(error, Problem):
        return error
    if isinstance(error, Rejected):
        return rejected_problem(error)
    if isinstance(error, ValidationError):
        return pydantic_problem(error)
    if isinstance(error, json.JSONDecodeError):
        return invalid_json_problem(error.msg)
    if isinstance(error, web.HTTPException):
        return http_exception_problem(error)
    return None


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost middleware: whatever goes wrong below, the client gets a problem document.

    2xx/3xx HTTP exceptions (redirects) are control flow, not errors, and pass
    through; cancellation is a BaseException and is never caught. Once a
    response has started (a websocket after its upgrade, a stream), a second
    response would corrupt the connection, so the error goes on to aiohttp,
    which logs it and drops the connection.
    """
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400 or _started(request):
            raise
        return http_exception_problem(error).to_response(request.path)
    except Exception as error:
        if _started(request):
            raise
        problem = to_problem(error)
        if problem is None:
            log.exception("unhandled error in %s %s", request.method, request.path)
            problem = internal_problem()
        return problem.to_response(request.path)


def _started(request: web.Request) -> bool:
    return request.writer.output_size > 0
