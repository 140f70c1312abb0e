"""What every service's HTTP app has: error bodies, health, readiness and Prometheus metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Literal

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from shared.api_errors import document_errors
from shared.auth import redact_tokens
from shared.errors import AlertyardError
from shared.http_auth import checks_bearer_token
from shared.logging import get_logger

__all__ = ["add_operational_routes", "add_request_logging", "install_error_handlers"]

ReadinessCheck = Callable[[], Awaitable[dict[str, bool]]]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessReport(BaseModel):
    ready: bool
    checks: dict[str, bool]
    """Each dependency by name (``redis``, ``partitions_assigned``, ...)."""


_HTTP_CODES = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}


def install_error_handlers(app: FastAPI) -> None:
    """Map our errors to ``{"code", "detail"}`` bodies with the error's HTTP status, and have
    OpenAPI document that body (:class:`shared.api_errors.Error`) on every operation."""
    document_errors(app, is_auth=checks_bearer_token)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # Starlette's own 404 (no route) and 405 (wrong method), in our body.
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names the first matching route's methods only
            headers["Allow"] = ", ".join(_allowed_methods(app, request))
        return JSONResponse(
            status_code=exc.status_code,
            content={"code": code, "detail": str(exc.detail)},
            headers=headers,
        )

    @app.exception_handler(AlertyardError)
    async def _alertyard_error(_: Request, exc: AlertyardError) -> JSONResponse:
        body = exc.to_dict()
        body["detail"] = redact_tokens(body["detail"])
        return JSONResponse(status_code=exc.http_status, content=body)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": redact_tokens(str(e.get("msg", "")))}
            for e in exc.errors()
        ]
        return JSONResponse(
            status_code=422,
            content={
                "code": "invalid_request",
                "detail": "request validation failed",
                "errors": errors,
            },
        )


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods served on the request's path. A literal path (``/v1/tokens/introspect``)
    wins over a template that would also match it (``/v1/tokens/{token_id}``), as in OpenAPI."""
    path = request.url.path
    literal: set[str] = set()
    templated: set[str] = set()
    for context in iter_route_contexts(app.routes):
        template = context.path_format
        if template is None or not compile_path(template)[0].match(path):
            continue
        (templated if "{" in template else literal).update(context.methods or ())
    return sorted(literal or templated)


def add_operational_routes(
    app: FastAPI, *, readiness: ReadinessCheck, registry: CollectorRegistry = REGISTRY
) -> None:
    """``/healthz`` (process alive), ``/readyz`` (dependencies ready) and ``/metrics``."""

    @app.get("/healthz", tags=["ops"], summary="Liveness")
    async def healthz() -> Health:
        return Health()

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: every dependency check passes",
        response_model=ReadinessReport,
        responses={503: {"model": ReadinessReport, "description": "A dependency is not ready"}},
    )
    async def readyz() -> JSONResponse:
        checks = await readiness()
        ready = all(checks.values())
        return JSONResponse(
            status_code=200 if ready else 503, content={"ready": ready, "checks": checks}
        )

    @app.get(
        "/metrics", tags=["ops"], summary="Prometheus metrics", response_class=PlainTextResponse
    )
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def add_request_logging(app: FastAPI) -> None:
    """One canonical ``http_request`` log line per request, with a fresh context each time.

    The path is logged, never the headers or the query string (either may carry a token).
    """
    log = get_logger("alertyard.http")

    @app.middleware("http")
    async def canonical_log_line(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        structlog.contextvars.clear_contextvars()
        started = time.perf_counter()
        response = await call_next(request)
        log.info(
            "http_request",
            method=request.method,
            path=request.url.path,
            status=response.status_code,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return response
