"""The audit service's HTTP app: the audit API plus health, readiness and metrics."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import FastAPI

from services.asyncapi import render_asyncapi
from services.audit.api import build_audit_api
from services.audit.gaps import GapTracker
from services.audit.summaries import SegmentSummaries
from services.audit.verify import VerifyCache
from shared.api_docs import serve_docs_offline
from shared.asyncapi_route import add_asyncapi_route
from shared.auth import TokenValidator
from shared.hardening import harden_http
from shared.http import add_operational_routes, add_request_logging, install_error_handlers
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
    auth_limiter: FailedAuthLimiter | None = None,
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
    app.state.verify_cache = VerifyCache()
    app.state.summaries = SegmentSummaries(log_dir)
    app.state.auth_limiter = auth_limiter  # brute-forcing tokens here is slowed too
    serve_docs_offline(app)
    install_error_handlers(app)

    harden_http(app)  # before the request log, so it logs what hardening refused
    add_request_logging(app)

    async def readiness() -> dict[str, bool]:
        return readiness_checks()

    add_operational_routes(app, readiness=readiness)
    add_asyncapi_route(app, render_asyncapi)
    app.include_router(build_audit_api())
    return app
