"""The OpenAPI 3.1 document of an :class:`~hall.api.routing.Api`, built from the
same declarations that parse and validate requests, so the description cannot
drift from what the server does.

All schemas come from one pydantic generation pass: models shared by several
routes appear once under ``components.schemas``, two models with the same
class name get distinct names, and a model whose input and output shapes
differ gets ``-Input``/``-Output`` variants instead of one wrong schema.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from hall.api.problems import PROBLEM_JSON, ProblemDetails

if TYPE_CHECKING:
    from hall.api.routing import Api, Route

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
PROBLEM_KEY = ("problem", "")
SECURITY_SCHEME = "bearer"

Key = tuple[str, str]
Schema = dict[str, Any]


class Schemas:
    """JSON schemas of every body, query and response model of the routes."""

    def __init__(self, routes: tuple[Route, ...]) -> None:
        inputs = [(PROBLEM_KEY, "serialization", TypeAdapter(ProblemDetails)), *_inputs(routes)]
        self._by_key, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF_TEMPLATE)
        self.components: dict[str, Schema] = definitions.get("$defs", {})

    def of(self, kind: str, route: Route) -> Schema:
        mode: JsonSchemaMode = "serialization" if kind == "response" else "validation"
        return self._by_key[((kind, route.operation_id), mode)]

    @property
    def problem(self) -> Schema:
        return self._by_key[(PROBLEM_KEY, "serialization")]

    def resolve(self, schema: Schema) -> Schema:
        """The schema a ``$ref`` points at (a model's own schema is always a ref)."""
        ref = schema.get("$ref")
        if ref is None:
            return schema
        return self.components[ref.rsplit("/", 1)[-1]]


def _inputs(routes: tuple[Route, ...]) -> list[tuple[Key, JsonSchemaMode, TypeAdapter[Any]]]:
    inputs: list[tuple[Key, JsonSchemaMode, TypeAdapter[Any]]] = []
    for route in routes:
        key = route.operation_id
        if route.body is not None:
            inputs.append((("body", key), "validation", TypeAdapter(route.body)))
        if route.query is not None:
            inputs.append((("query", key), "validation", TypeAdapter(route.query)))
        if route.response is not None:
            inputs.append((("response", key), "serialization", TypeAdapter(route.response)))
    return inputs


def build_document(api: Api) -> dict[str, Any]:
    schemas = Schemas(api.routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in api.routes:
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = _operation(route, schemas)
    info: dict[str, Any] = {"title": api.title, "version": api.version}
    if api.description:
        info["description"] = api.description
    return {
        "openapi": OPENAPI_VERSION,
        "info": info,
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "responses": {"Problem": _problem_response("An RFC 9457 problem", schemas)},
            "securitySchemes": {SECURITY_SCHEME: {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(route: Route, schemas: Schemas) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": route.operation_id}
    if route.summary:
        operation["summary"] = route.summary
    if route.description:
        operation["description"] = route.description
    if route.tags:
        operation["tags"] = list(route.tags)
    parameters = _path_parameters(route) + _query_parameters(route, schemas)
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        content = {"application/json": {"schema": schemas.of("body", route)}}
        operation["requestBody"] = {"required": True, "content": content}
    operation["responses"] = _success(route, schemas) | _failures(route, schemas)
    if route.roles:
        operation["security"] = [{SECURITY_SCHEME: []}]
        operation["x-roles"] = list(route.roles)
    return operation


def _path_parameters(route: Route) -> list[dict[str, Any]]:
    parameters = []
    for param in route.params:
        schema: Schema = {"type": "string"}
        if param.pattern:
            schema["pattern"] = f"^(?:{param.pattern})$"
        parameters.append({"name": param.name, "in": "path", "required": True, "schema": schema})
    return parameters


def _query_parameters(route: Route, schemas: Schemas) -> list[dict[str, Any]]:
    """One parameter per field of the query model; list fields are repeated keys,
    which is OpenAPI's default (form, exploded) for query parameters."""
    if route.query is None:
        return []
    model = schemas.resolve(schemas.of("query", route))
    required = set(model.get("required", ()))
    parameters = []
    for name, schema in model.get("properties", {}).items():
        parameter = {"name": name, "in": "query", "required": name in required, "schema": schema}
        if "description" in schema:
            parameter["description"] = schema["description"]
        parameters.append(parameter)
    return parameters


def _success(route: Route, schemas: Schemas) -> dict[str, Any]:
    if route.status == 204:
        return {"204": {"description": "Done; no content"}}
    response: dict[str, Any] = {"description": "Success"}
    if route.response is not None:
        response["content"] = {"application/json": {"schema": schemas.of("response", route)}}
    return {str(route.status): response}


def _failures(route: Route, schemas: Schemas) -> dict[str, Any]:
    """The problems the framework itself may answer, then every other problem."""
    failures: dict[str, Any] = {}
    if route.body is not None:
        failures["400"] = _problem_response("The body is not JSON (invalid_json)", schemas)
        failures["413"] = _problem_response("The body is too large", schemas)
    if route.roles:
        failures["401"] = _problem_response("Not authenticated", schemas)
        failures["403"] = _problem_response("Not allowed for this caller's role", schemas)
    if route.body is not None or route.query is not None:
        failures["422"] = _problem_response("Invalid input; see errors", schemas)
    problem = {"$ref": "#/components/responses/Problem"}
    return dict(sorted(failures.items())) | {"4XX": problem, "5XX": problem}


def _problem_response(description: str, schemas: Schemas) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": schemas.problem}}}
