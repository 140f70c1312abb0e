"""The console's FastAPI app: pages, static assets, error pages, health and metrics.

``create_app`` wires what it is given onto ``app.state``; ``lifespan`` starts and stops what
needs it (the token validator's invalidation listener, the API clients). ``main`` enters the
lifespan itself because ``shared.serving`` runs uvicorn without one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from cryptography.fernet import Fernet
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console.backend import ApiError, Backend
from services.console.metrics import ConsoleMetrics
from services.console.pages.alerts import build_alert_pages
from services.console.pages.audit import build_audit_pages
from services.console.pages.rules import build_rule_pages
from services.console.pages.settings import build_settings_pages
from services.console.pages.signin import build_signin_pages
from services.console.security import add_security_headers
from services.console.sessions import SessionStore
from services.console.viewer import SESSION_COOKIE, SignInRequired
from services.console.views import STATIC_DIR, render
from shared.auth import redact_tokens
from shared.errors import AlertyardError
from shared.hardening import harden_http
from shared.http import add_operational_routes, add_request_logging
from shared.http_auth import FailedAuthLimiter
from shared.logging import get_logger
from shared.settings.console import ConsoleSettings
from shared.tokens.validator import RedisTokenValidator

__all__ = ["create_app", "lifespan"]

log = get_logger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def create_app(
    *,
    settings: ConsoleSettings,
    redis: Redis,
    validator: RedisTokenValidator,
    backend: Backend,
    metrics: ConsoleMetrics | None = None,
    clock: Callable[[], datetime] = _now,
    session_clock: Callable[[], float] = time.time,
) -> FastAPI:
    key = (
        settings.session_key.get_secret_value().encode()
        if settings.session_key
        else Fernet.generate_key()
    )
    app = FastAPI(
        title="alertyard console",
        version="0.1.0",
        summary="Pages for people: alerts, rules, tokens, users, teams and the audit log.",
        lifespan=lifespan,
        docs_url=None,  # the console is pages; its routes are documented in docs/console.md
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    app.state.redis = redis
    app.state.validator = validator
    app.state.backend = backend
    app.state.metrics = metrics or ConsoleMetrics()
    app.state.clock = clock
    app.state.sessions = SessionStore(
        redis, key=key, ttl_s=settings.session_ttl_s, clock=session_clock
    )
    app.state.auth_limiter = FailedAuthLimiter.from_settings(settings)
    add_security_headers(app)
    harden_http(app)  # before the request log, so it logs what hardening refused
    add_request_logging(app)
    _install_error_pages(app)

    async def readiness() -> dict[str, bool]:
        try:
            redis_ok = bool(await redis.ping())
        except Exception:  # readiness reports, it does not raise
            redis_ok = False
        return {"redis": redis_ok, "invalidation_listener": validator.listening}

    add_operational_routes(app, readiness=readiness, registry=app.state.metrics.registry)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for pages in (
        build_signin_pages(),
        build_alert_pages(),
        build_rule_pages(),
        build_settings_pages(),
        build_audit_pages(),
    ):
        app.include_router(pages)
    return app


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the validator's invalidation listener; close the API clients at the end."""
    validator: RedisTokenValidator = app.state.validator
    backend: Backend = app.state.backend
    await validator.start()
    try:
        yield
    finally:
        await validator.stop()
        await backend.aclose()


_STATUS_HELP = {
    400: "The address or form had a value the console cannot use. Go back and try again.",
    401: "Your token is not accepted any more. Sign in again.",
    403: "Your token may not do this. Ask an admin for a token with the needed permission.",
    404: "Nothing here. It may not exist, or it is not visible to your token.",
    409: "Something changed meanwhile. Reload the page and try again.",
    422: "The request was refused as invalid. Check the form and try again.",
    429: "Too many attempts. Wait a minute and try again.",
    503: "A service the console needs did not answer. Try again shortly; `make run` starts it.",
}


def _error_page(request: Request, status: int, detail: str, code: str) -> Response:
    viewer = getattr(request.state, "viewer", None)
    return render(
        request,
        "error.html",
        viewer=viewer,
        status_code=status,
        status=status,
        detail=detail,
        code=code,
        help=_STATUS_HELP.get(status, "Something went wrong. Try again, or go back."),
    )


def _install_error_pages(app: FastAPI) -> None:
    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        response = RedirectResponse(f"/signin?ended={exc.reason}", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        request.app.state.metrics.api_errors.labels(
            service=exc.service, status=str(exc.status)
        ).inc()
        if exc.status == 401:  # the token died between the session check and the call
            return await _sign_in(request, SignInRequired(exc.api_code))
        return _error_page(request, exc.status, exc.detail, exc.api_code)

    @app.exception_handler(AlertyardError)
    async def _our_error(request: Request, exc: AlertyardError) -> Response:
        return _error_page(request, exc.http_status, exc.detail, exc.code)

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(str(e.get("loc", ["?"])[-1]) for e in exc.errors())
        return _error_page(request, 400, f"invalid value for: {fields}", "invalid_request")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.error("console_page_failed", path=request.url.path, error=redact_tokens(repr(exc)))
        return _error_page(request, 500, "the console failed to build this page", "internal_error")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = "page not found" if exc.status_code == 404 else str(exc.detail)
        return _error_page(request, exc.status_code, detail, "http_error")
