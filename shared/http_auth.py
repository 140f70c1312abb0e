"""FastAPI dependencies that authorise a request with the process's token validator.

Each service puts its validator (``services.tokens`` implements :class:`TokenValidator`) on
``app.state.validator``; endpoints declare what they need with ``Depends(require(...))``.

Optionally, ``app.state.auth_limiter`` holds a :class:`FailedAuthLimiter`: once a source IP has
failed authentication ``limit`` times within ``window_s`` seconds, its requests get 429
(``rate_limited``) without their token being checked, until the window ends.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request

from shared.auth import Permission, Principal, TokenValidator
from shared.errors import ForbiddenError, RateLimitedError, UnauthenticatedError

__all__ = ["FailedAuthLimiter", "authenticated", "require"]


class FailedAuthLimiter:
    """Counts failed authentications per source in fixed windows (in-process)."""

    def __init__(
        self,
        *,
        limit: int = 20,
        window_s: float = 60.0,
        max_sources: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._max_sources = max_sources
        self._clock = clock
        self._windows: dict[str, tuple[float, int]] = {}

    def retry_after_s(self, source: str) -> float | None:
        """Seconds until ``source`` may try again, or None when it is not blocked."""
        window = self._windows.get(source)
        if window is None:
            return None
        started, failures = window
        remaining = started + self.window_s - self._clock()
        if remaining <= 0:
            del self._windows[source]
            return None
        return remaining if failures >= self.limit else None

    def record_failure(self, source: str) -> None:
        now = self._clock()
        started, failures = self._windows.get(source, (now, 0))
        if now - started >= self.window_s:
            started, failures = now, 0
        if len(self._windows) >= self._max_sources and source not in self._windows:
            self._prune(now)
        self._windows[source] = (started, failures + 1)

    def _prune(self, now: float) -> None:
        expired = [s for s, (t, _) in self._windows.items() if now - t >= self.window_s]
        for source in expired or list(self._windows)[: self._max_sources // 10]:
            del self._windows[source]


def _validator(request: Request) -> TokenValidator:
    validator: TokenValidator = request.app.state.validator
    return validator


async def authenticated(request: Request) -> Principal:
    """The principal behind the request's ``Authorization: Bearer`` token (401 otherwise)."""
    limiter: FailedAuthLimiter | None = getattr(request.app.state, "auth_limiter", None)
    source = request.client.host if request.client else "unknown"
    if limiter is not None:
        wait = limiter.retry_after_s(source)
        if wait is not None:
            raise RateLimitedError(
                "too many failed authentications from this address; try again later",
                retry_after_s=round(wait, 1),
            )
    try:
        return await _authenticate(request)
    except UnauthenticatedError as exc:
        if limiter is not None and not exc.retriable:  # an outage is not the caller's fault
            limiter.record_failure(source)
        raise


async def _authenticate(request: Request) -> Principal:
    header = request.headers.get("authorization")
    if not header:
        raise UnauthenticatedError("missing Authorization header; send 'Bearer <token>'")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("Authorization header must be 'Bearer <token>'")
    return await _validator(request).authenticate(token.strip())


def require(permission: Permission) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates and then demands ``permission`` (403 otherwise)."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticated(request)
        if not principal.has(permission):
            raise ForbiddenError(f"this token lacks the {permission.value} permission")
        return principal

    dependency.__name__ = f"require_{permission.name}"
    return dependency
