"""HTTP hardening every service gets with one call: :func:`harden_http`.

* Security headers on every response: no MIME sniffing, no framing, no referrer, no caching
  (token secrets are shown once and must not sit in a cache). A page that sets its own
  ``Content-Security-Policy`` (the console) keeps it; everyone else gets a deny-all one that
  still lets the API docs page load.
* Request bodies are capped (``Content-Length`` checked up front, streamed bodies counted): 413.
* Tokens are only accepted in the ``Authorization`` header: a URL whose path or query string
  holds something token-shaped, or a query parameter named like a credential, is refused
  (400 ``token_in_url``) before any handler or log line sees it.

A pure ASGI middleware rather than ``BaseHTTPMiddleware`` so the body limit applies while the
body streams, without buffering it.
"""

from __future__ import annotations

import json
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import TOKEN_RE
from shared.errors import AlertyardError, PayloadTooLargeError, TokenInUrlError

__all__ = ["CREDENTIAL_PARAMS", "DEFAULT_MAX_BODY_BYTES", "SECURITY_HEADERS", "harden_http"]

DEFAULT_MAX_BODY_BYTES: Final = 1 << 20
"""1 MiB: far above any alert, rule file or webhook the services accept."""
CREDENTIAL_PARAMS: Final = frozenset(
    {"access_token", "token", "api_key", "apikey", "authorization", "bearer", "secret"}
)
"""Query parameters refused whatever their value: a credential must not travel in a URL."""
SECURITY_HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_DEFAULT_CSP: Final = b"default-src 'none'; frame-ancestors 'none'"
_DOCS_CSP: Final = (
    b"default-src 'none'; frame-ancestors 'none'; img-src 'self' data: https://fastapi.tiangolo.com;"
    b" script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net;"
    b" style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; connect-src 'self'"
)
_DOCS_PATHS: Final = frozenset({"/docs", "/redoc", "/docs/oauth2-redirect"})


class _BodyTooLargeError(Exception):
    """Raised from ``receive`` to stop the app reading a body past the limit."""


def _url_problem(scope: Scope) -> AlertyardError | None:
    path = unquote(scope.get("path", ""))
    query = scope.get("query_string", b"").decode("latin-1")
    if TOKEN_RE.search(path) or TOKEN_RE.search(unquote(query)):
        return TokenInUrlError(
            "tokens are accepted only in the Authorization header, never in a URL; "
            "this one may now be in proxy logs and history: rotate it"
        )
    names = {name.lower() for name, _ in parse_qsl(query, keep_blank_values=True)}
    if found := sorted(names & CREDENTIAL_PARAMS):
        return TokenInUrlError(
            f"query parameter {found[0]!r} looks like a credential; send tokens only in the "
            "Authorization header"
        )
    return None


class _Hardening:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = _DOCS_CSP if scope.get("path") in _DOCS_PATHS else _DEFAULT_CSP
        state = {"started": False, "too_large": False}

        async def send_hardened(message: Message) -> None:
            if state["too_large"] and message["type"].startswith("http.response"):
                # The app answered a body it could not read in full (FastAPI turns the read
                # error into a 400): answer 413 in its place, once.
                if not state["started"]:
                    state["started"] = True
                    await _send_error(send_secured, self._too_large())
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send_secured(message)

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers: list[tuple[bytes, bytes]] = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                message = {**message, "headers": headers}
            await send(message)

        problem = _url_problem(scope) or self._declared_size_problem(scope)
        if problem is not None:
            await _send_error(send_secured, problem)
            return
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    state["too_large"] = True
                    raise _BodyTooLargeError
            return message

        try:
            await self.app(scope, receive_limited, send_hardened)
        except _BodyTooLargeError:
            if state["started"]:
                raise  # too late for a clean answer; the server closes the connection
            state["started"] = True
            await _send_error(send_secured, self._too_large())

    def _declared_size_problem(self, scope: Scope) -> AlertyardError | None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return None  # the server rejects a malformed length itself
                return self._too_large() if declared > self.max_body_bytes else None
        return None

    def _too_large(self) -> AlertyardError:
        return PayloadTooLargeError(
            f"request body is larger than {self.max_body_bytes} bytes",
            max_bytes=self.max_body_bytes,
        )


async def _send_error(send: Send, error: AlertyardError) -> None:
    body = json.dumps(error.to_dict()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def harden_http(app: FastAPI, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
    """Add the hardening middleware to ``app``. Call it before ``add_request_logging`` so the
    canonical log line also records what the hardening refused."""
    options: dict[str, Any] = {"max_body_bytes": max_body_bytes}
    app.add_middleware(_Hardening, **options)
