"""The per-token request budget (``limits``), shared across processes when its storage is
Redis. Keyed by token id, never by the secret."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, cast

from limits import parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

from shared.errors import RateLimitedError

__all__ = ["TokenRateLimiter"]


class TokenRateLimiter:
    def __init__(
        self, rate: str, storage: str = "memory://", *, clock: Callable[[], float] = time.time
    ) -> None:
        self._item = parse(rate) if rate else None
        backend = cast(Any, storage_from_string(f"async+{storage}"))  # an async storage
        self._limiter = MovingWindowRateLimiter(backend)
        self._clock = clock

    async def charge(self, token_id: str) -> None:
        """Count one request; raises :class:`RateLimitedError` (429) when over the budget."""
        if self._item is None:
            return
        if await self._limiter.hit(self._item, "ingest", token_id):
            return
        stats = await self._limiter.get_window_stats(self._item, "ingest", token_id)
        wait = max(1, math.ceil(stats.reset_time - self._clock()))
        raise RateLimitedError(
            f"this token is over its ingest rate limit ({self._item}); retry later",
            retry_after_s=wait,
        )
