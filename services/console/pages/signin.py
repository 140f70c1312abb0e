"""Sign in with a token pasted into a password field; sign out.

The token travels only in the POST body, is checked by the same validator as every API and is
kept encrypted in the session record. The sign-in form is protected against login CSRF with a
double-submit cookie (there is no session yet).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.security import check_csrf
from services.console.sessions import SessionStore
from services.console.viewer import SESSION_COOKIE, CurrentViewer
from services.console.views import render
from shared.auth import TokenValidator
from shared.errors import RateLimitedError, UnauthenticatedError
from shared.http_auth import FailedAuthLimiter

__all__ = ["ENDED_MESSAGES", "build_signin_pages"]

_SIGNIN_COOKIE = "alertyard_signin"

ENDED_MESSAGES = {
    "signed_out": "Sign in with an alertyard token to continue.",
    "expired": "Your session expired. Sign in again.",
    "token_revoked": "Your session ended: the token it used was revoked.",
    "token_expired": "Your session ended: the token it used has expired.",
    "user_deactivated": "Your session ended: your user was deactivated.",
    "token_unknown": "Your session ended: the token it used no longer exists.",
    "token_changed": "Your session ended: its token changed. Sign in again.",
    "bye": "You are signed out.",
}
"""Why the sign-in page is shown (a fixed set: the page never echoes the query string)."""


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _form(request: Request, *, error: str | None = None, status_code: int = 200) -> Response:
    nonce = secrets.token_urlsafe(24)
    reason = request.query_params.get("ended", "signed_out")
    response = render(
        request,
        "signin.html",
        viewer=None,
        status_code=status_code,
        signin_csrf=nonce,
        reason_text=ENDED_MESSAGES.get(reason, ENDED_MESSAGES["signed_out"]),
        error=error,
    )
    response.set_cookie(
        _SIGNIN_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        max_age=3600,
        path="/signin",
    )
    return response


def build_signin_pages() -> APIRouter:
    router = APIRouter()

    @router.get("/signin", response_class=HTMLResponse, summary="The sign-in form")
    async def signin_form(request: Request) -> Response:
        return _form(request)

    @router.post("/signin", summary="Open a session for a token")
    async def signin(
        request: Request,
        token: Annotated[str, Form(max_length=512)] = "",
        csrf: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        check_csrf(request.cookies.get(_SIGNIN_COOKIE, ""), csrf)
        limiter: FailedAuthLimiter = request.app.state.auth_limiter
        source = limiter.client_address.of(request)
        wait = await limiter.retry_after_s(source)
        if wait is not None:
            raise RateLimitedError(
                "too many failed sign-ins from this address; try again in a minute",
                retry_after_s=round(wait, 1),
            )
        validator: TokenValidator = request.app.state.validator
        metrics = request.app.state.metrics
        try:
            principal = await validator.authenticate(token.strip())
        except UnauthenticatedError as exc:
            if exc.retriable:
                raise
            await limiter.record_failure(source)
            metrics.sign_ins.labels(outcome=exc.code).inc()
            return _form(
                request,
                error=f"That token cannot sign in ({exc.code}). Paste a valid alertyard token.",
                status_code=401,
            )
        sessions: SessionStore = request.app.state.sessions
        if previous := request.cookies.get(SESSION_COOKIE):
            await sessions.close(previous)  # a sign-in always starts a fresh session id
        session = await sessions.open(token=token.strip(), token_id=principal.token_id)
        metrics.sign_ins.labels(outcome="ok").inc()
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            session.id,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            max_age=request.app.state.settings.session_ttl_s,
            path="/",
        )
        response.delete_cookie(_SIGNIN_COOKIE, path="/signin")
        return response

    @router.post("/signout", summary="End the session")
    async def signout(
        request: Request, viewer: CurrentViewer, csrf: Annotated[str, Form()] = ""
    ) -> Response:
        check_csrf(viewer.session.csrf, csrf)
        sessions: SessionStore = request.app.state.sessions
        await sessions.close(viewer.session.id)
        response = RedirectResponse("/signin?ended=bye", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return router
