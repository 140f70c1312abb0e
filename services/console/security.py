"""Browser-facing protections: response headers (a strict CSP) and CSRF checks.

Every value an alert carries is attacker-controlled: templates autoescape everything, and the
CSP allows scripts and styles from this origin only (no inline script, no ``eval``), so even a
missed escape could not run code. Forms carry a per-session CSRF secret; the sign-in form,
which has no session yet, uses a double-submit cookie.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response

from shared.errors import ForbiddenError

__all__ = ["CONTENT_SECURITY_POLICY", "CsrfError", "add_security_headers", "check_csrf"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# The rest (nosniff, frame denial, no referrer, no-store) comes from shared.hardening.
_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


class CsrfError(ForbiddenError):
    code = "csrf_failed"


def add_security_headers(app: FastAPI) -> None:
    """Set the console's own CSP on every response (``harden_http`` keeps a page's CSP and
    adds the common headers); pages are never cached (they may show a secret once, and the
    back button must not show it again)."""

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(_HEADERS)
        if not request.url.path.startswith("/static/"):
            response.headers["cache-control"] = "no-store"
        return response


def check_csrf(expected: str, sent: object) -> None:
    """Raise :class:`CsrfError` unless ``sent`` is the expected secret (constant time)."""
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(expected, sent):
        raise CsrfError("this form is out of date or did not come from this console; reload it")
