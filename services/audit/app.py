"""The audit service's HTTP app: the audit API plus health, readiness and metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI, Request, Response

from services.audit.api import build_audit_api
from services.audit.gaps import GapTracker
from shared.auth import TokenValidator
from shared.http import add_operational_routes, install_error_handlers
from shared.http_auth import FailedAuthLimiter
from shared.logging import get_logger

__all__ = ["build_app"]

log = get_logger(__name__)


def build_app(
    *,
    validator: TokenValidator,
    log_dir: Path,
    public_key: Ed25519PublicKey,
    gaps: GapTracker,
    readiness_checks: Callable[[], dict[str, bool]] = dict,
) -> FastAPI:
    """Wire the audit dependencies onto ``app.state`` and mount the routes.

    ``readiness_checks`` returns named booleans for ``/readyz`` (no I/O: it runs on the loop).
    """
    app = FastAPI(
        title="alertyard audit",
        summary="Append-only, hash-chained, signed log of token and rule changes.",
        version="0.1.0",
    )
    app.state.validator = validator
    app.state.log_dir = log_dir
    app.state.public_key = public_key
    app.state.gaps = gaps
    app.state.auth_limiter = FailedAuthLimiter()  # brute-forcing tokens here is slowed too
    install_error_handlers(app)

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

    async def readiness() -> dict[str, bool]:
        return readiness_checks()

    add_operational_routes(app, readiness=readiness)
    app.include_router(build_audit_api())
    return app
