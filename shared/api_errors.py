"""The one error body every HTTP service answers with, and how OpenAPI documents it.

:class:`Error` is the schema of ``{"code", "detail", "context"?, "errors"?}`` (see
:func:`shared.http.install_error_handlers`). :func:`document_errors` adds it, once per
service document, to every operation for every status the operation can really return, so no
route has to list them:

* every operation: 400 (a token in the URL, refused by ``shared.hardening``);
* an operation with parameters or a body: 422 (the request does not validate);
* a request body (POST/PUT/PATCH): 413 (larger than the service's limit);
* a path parameter: 404 (no such resource, or one the caller may not know of);
* an ``expected_version`` parameter: 409 (the resource moved on);
* a bearer-token dependency (``shared.http_auth``): 401, 403, 429 (failed authentications
  from the address), 503 (tokens cannot be checked now).

Statuses a route can return for its own reasons are declared on it with
``responses=error_responses(409)``; what a route declares itself is never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, Final

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ERROR_DESCRIPTIONS",
    "Error",
    "ErrorItem",
    "document_errors",
    "error_responses",
    "request_body",
]

_REF: Final = "#/components/schemas/"
ERROR_DESCRIPTIONS: Final[dict[int, str]] = {
    400: "Bad request: a token in the URL, or a body that is not what the operation takes",
    401: "No valid bearer token (missing, malformed, unknown, expired, revoked)",
    403: "The token is valid but may not do this",
    404: "No such resource (or one this token may not see)",
    409: "Conflict: the resource exists already or moved on (expected_version)",
    413: "Request body larger than the service accepts",
    422: "The request does not validate; `errors` says where",
    429: "Too many failed authentications (or requests) from this client; retry later",
    503: "A backing service (Redis, Kafka) does not answer; retry later",
}


class ErrorItem(BaseModel):
    """One problem of a request: where it is (``loc`` for a parameter or body field,
    ``index`` for one alert of a batch) and what it is."""

    model_config = ConfigDict(extra="allow")

    loc: list[str | int] | None = None
    """Path to the invalid value (``["query", "limit"]``, ``["body", "name"]``)."""
    msg: str | None = None
    index: int | None = None
    """The alert's position in the request (ingest); null for the request as a whole."""
    reason: str | None = None
    """Stable reason code (ingest), as in ``alerts.rejected``."""
    detail: str | None = None


class Error(BaseModel):
    """Every error the services answer with. ``code`` is stable API; ``detail`` is for
    people and never holds a secret."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(examples=["invalid_request", "not_found", "token_revoked"])
    detail: str
    context: dict[str, Any] | None = None
    """Safe structured detail: ids, names, limits (``retry_after_s``, ``max_bytes``)."""
    errors: list[ErrorItem] | None = None
    """For 422 (and ingest's 400): one item per problem."""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that returns these statuses for reasons of its own."""
    return {s: {"model": Error, "description": ERROR_DESCRIPTIONS[s]} for s in statuses}


_BODY_MODELS: dict[str, type[BaseModel]] = {}


def request_body(
    model: type[BaseModel], *, name: str | None = None, media_types: tuple[str, ...] = ()
) -> dict[str, Any]:
    """``openapi_extra=`` for a route that reads its body itself (to answer with its own error
    codes, or to take YAML too) but validates it with ``model``: the document shows ``model``
    under ``name`` for JSON and each of ``media_types``."""
    name = name or model.__name__
    _BODY_MODELS[name] = model
    schema = {"$ref": f"{_REF}{name}"}
    content = {media: {"schema": schema} for media in ("application/json", *media_types)}
    return {"requestBody": {"required": True, "content": content}}


def document_errors(app: FastAPI, *, is_auth: Callable[[Any], bool]) -> None:
    """Make ``app.openapi()`` document :class:`Error` on every operation (see the module),
    and name each operation after its handler (``create_token``), which links refer to.

    ``is_auth(call)`` tells a dependency that checks a bearer token (``shared.http_auth``)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        routes = {
            (context.path_format, method.lower()): context.original_route
            for context in iter_route_contexts(app.routes)  # included routers too
            if isinstance(context.original_route, APIRoute)
            for method in context.methods or ()
        }
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                route = routes.get((path, method))
                if route is not None:
                    # The handler's name: short, stable, and what links and clients name.
                    operation["operationId"] = route.name
                    _document(operation, _statuses(route, method, is_auth))
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        _add_schema(schemas, Error)
        text = json.dumps(document)
        for name, model in _BODY_MODELS.items():
            if f'"{_REF}{name}"' in text:
                _add_schema(schemas, model, name=name)
        for unused in ("HTTPValidationError", "ValidationError"):
            if f'"{_REF}{unused}"' not in json.dumps(document):
                schemas.pop(unused, None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _statuses(route: APIRoute, method: str, is_auth: Callable[[Any], bool]) -> set[int]:
    statuses = {400}
    params = list(_params(route.dependant))
    if params or route.body_field is not None:
        statuses.add(422)
    if method in ("post", "put", "patch"):
        statuses.add(413)
    if route.dependant.path_params:
        statuses.add(404)
    if "expected_version" in params:
        statuses.add(409)
    if any(is_auth(dep.call) for dep in _dependencies(route.dependant)):
        statuses |= {401, 403, 429, 503}
    return statuses


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dep in dependant.dependencies:
        yield dep
        yield from _dependencies(dep)


def _params(dependant: Dependant) -> Iterator[str]:
    for dep in (dependant, *_dependencies(dependant)):
        for field in (*dep.path_params, *dep.query_params, *dep.header_params):
            yield field.alias


def _document(operation: dict[str, Any], statuses: set[int]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    default_422 = responses.get("422", {}).get("content", {}).get("application/json", {})
    if default_422.get("schema", {}).get("$ref") == f"{_REF}HTTPValidationError":
        del responses["422"]  # FastAPI's default body; ours is Error
    for status in sorted(statuses):
        responses.setdefault(
            str(status),
            {
                "description": ERROR_DESCRIPTIONS[status],
                "content": {"application/json": {"schema": {"$ref": f"{_REF}Error"}}},
            },
        )
    operation["responses"] = dict(sorted(responses.items()))


def _add_schema(schemas: dict[str, Any], model: type[BaseModel], *, name: str = "") -> None:
    generated = model.model_json_schema(ref_template=_REF + "{model}", mode="validation")
    for nested, definition in generated.pop("$defs", {}).items():
        schemas.setdefault(nested, definition)
    if name:
        generated["title"] = name  # clients name their classes after the title
    schemas.setdefault(name or model.__name__, generated)
