"""The REST API framework: typed routes (:mod:`.routing`), RFC 9457 problems
(:mod:`.problems`) and the OpenAPI document (:mod:`.openapi`)."""

from __future__ import annotations

from hall.api.problems import Problem, problem_middleware
from hall.api.routing import Api, Authorize, Route

__all__ = ["Api", "Authorize", "Problem", "Route", "problem_middleware"]
