"""FastAPI dependencies that authorise a request with the process's token validator.

Each service puts its validator (``services.tokens`` implements :class:`TokenValidator`) on
``app.state.validator``; endpoints declare what they need with ``Depends(require(...))``.

Optionally, ``app.state.auth_limiter`` holds a :class:`FailedAuthLimiter`: once a client
address has failed authentication ``limit`` times within a moving window of ``window_s``
seconds, its requests get 429 (``rate_limited``) without their token being checked. The
counts live in Redis (the ``limits`` package), so every process of every service shares them;
the client address comes from :class:`ClientAddress` (a trusted proxy's header, else the peer).
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Final

from fastapi import Request
from limits import RateLimitItemPerSecond
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from shared.auth import Permission, Principal, TokenValidator
from shared.errors import ForbiddenError, RateLimitedError, UnauthenticatedError
from shared.logging import get_logger
from shared.settings import CommonSettings

__all__ = [
    "ClientAddress",
    "FailedAuthLimiter",
    "authenticated",
    "checks_bearer_token",
    "require",
]

log = get_logger(__name__)

LIMITER_KEY_PREFIX: Final = "alertyard:authfail"
_IP = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class ClientAddress:
    """Who the client is: the TCP peer, or, when the peer is a trusted proxy, the address that
    proxy wrote into ``header`` (``X-Forwarded-For`` style lists are read right to left,
    skipping trusted proxies, so a client cannot choose its own key by sending the header)."""

    header: str | None = None
    trusted_proxies: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    _networks: tuple[IPv4Network | IPv6Network, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Parsed once, so a bad CIDR in the settings stops the service at start, not a request.
        networks = tuple(ip_network(net, strict=False) for net in self.trusted_proxies)
        object.__setattr__(self, "_networks", networks)

    def of(self, request: Request) -> str:
        peer = request.client.host if request.client else "unknown"
        if self.header is None or not self._trusted(peer):
            return peer
        values = request.headers.getlist(self.header)
        hops = [hop.strip() for value in values for hop in value.split(",") if hop.strip()]
        client = peer
        for hop in reversed(hops):
            if _parse(hop) is None:
                break  # a garbled entry: trust nothing further left
            client = hop
            if not self._trusted(hop):
                break
        return client

    def _trusted(self, address: str) -> bool:
        parsed = _parse(address)
        return parsed is not None and any(parsed in net for net in self._networks)


def _parse(address: str) -> _IP | None:
    try:
        return ip_address(address)
    except ValueError:
        return None


class FailedAuthLimiter:
    """Counts failed authentications per client address in a moving window, in Redis."""

    def __init__(
        self,
        storage: Storage,
        *,
        limit: int = 20,
        window_s: float = 60.0,
        client_address: ClientAddress | None = None,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.client_address = client_address or ClientAddress()
        self._item = RateLimitItemPerSecond(limit, max(1, math.ceil(window_s)))
        self._limiter = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> FailedAuthLimiter:
        """The limiter every service builds: Redis at ``redis_url``, the shared limits."""
        storage = RedisStorage(
            _limits_uri(settings.redis_url),
            implementation="redispy",
            key_prefix=LIMITER_KEY_PREFIX,
            wrap_exceptions=True,
        )
        address = ClientAddress(settings.trusted_proxy_header, tuple(settings.trusted_proxies))
        return cls(
            storage,
            limit=settings.auth_fail_limit,
            window_s=settings.auth_fail_window_s,
            client_address=address,
        )

    async def retry_after_s(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None when it is not blocked.

        If Redis does not answer the limiter steps aside (the token check itself fails
        closed without Redis, so nothing is let through that would otherwise be refused).
        """
        try:
            if await self._limiter.test(self._item, client):
                return None
            stats = await self._limiter.get_window_stats(self._item, client)
        except StorageError as exc:
            log.warning("auth_limiter_unavailable", error=type(exc.storage_error).__name__)
            return None
        return max(0.1, stats.reset_time - time.time())

    async def record_failure(self, client: str) -> None:
        try:
            await self._limiter.hit(self._item, client)
        except StorageError as exc:
            log.warning("auth_limiter_unavailable", error=type(exc.storage_error).__name__)

    async def clear(self, clients: Iterable[str]) -> None:
        """Forget the failures of ``clients`` (an operator unblocking an address)."""
        for client in clients:
            await self._limiter.clear(self._item, client)


def _validator(request: Request) -> TokenValidator:
    validator: TokenValidator = request.app.state.validator
    return validator


async def authenticated(request: Request) -> Principal:
    """The principal behind the request's ``Authorization: Bearer`` token (401 otherwise)."""
    limiter: FailedAuthLimiter | None = getattr(request.app.state, "auth_limiter", None)
    source = limiter.client_address.of(request) if limiter is not None else ""
    if limiter is not None:
        wait = await limiter.retry_after_s(source)
        if wait is not None:
            raise RateLimitedError(
                "too many failed authentications from this address; try again later",
                retry_after_s=round(wait, 1),
            )
    try:
        return await _authenticate(request)
    except UnauthenticatedError as exc:
        if limiter is not None and not exc.retriable:  # an outage is not the caller's fault
            await limiter.record_failure(source)
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
    _BEARER_CHECKS.add(dependency)
    return dependency


_BEARER_CHECKS: set[Callable[..., object]] = {authenticated}


def checks_bearer_token(call: object) -> bool:
    """True for the dependencies above (OpenAPI documents 401/403/429/503 on their routes)."""
    return call in _BEARER_CHECKS


def _limits_uri(redis_url: str) -> str:
    """``limits``' spelling of a redis-py URL: ``async+redis://...``, and a unix socket as
    ``async+redis+unix://...`` (a bare ``async+unix://`` would be taken for Valkey)."""
    if redis_url.startswith("unix://"):
        return "async+redis+" + redis_url
    return "async+" + redis_url
