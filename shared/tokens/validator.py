"""The token validator every service runs in-process (router, rules API, token API).

A check is, in order: the in-process cache (keyed by the token's HMAC, no I/O), the
format and keyed checksum (no I/O, so forged tokens never reach Redis), then two Redis round
trips (digest -> token id, then the token and its user).

The cache is a cachetools ``LRUCache`` (past ``cache_max_entries`` the least recently used
entry goes, never the whole cache); each entry carries its own deadlines: fresh for
``cache_ttl_s``, servable during a Redis outage until ``cache_ttl_s + redis_down_grace_s`` after
Redis confirmed it, never past the token's expiry. (``TTLCache`` would do the same bookkeeping
at four times the cost of a hit, which is measured in microseconds.)
Caches are kept honest by Redis pub/sub: every revoke, rotation, user deactivation and role
change publishes an invalidation in the same transaction as the change, and every validator
drops the affected entries at once. Entries also go stale after ``cache_ttl_s`` as a backstop.

When Redis is unreachable, uncached tokens are rejected (``auth_unavailable``: fail closed);
cached ones keep working until ``redis_down_grace_s`` after Redis last confirmed them.

Time is a parameter: ``clock`` (monotonic seconds, for TTLs and grace) and ``wall_clock`` (for
token expiry) default to the real clocks; tests pass their own and move them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from cachetools import LRUCache, TTLCache
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.auth import Principal
from shared.errors import UnauthenticatedError
from shared.logging import get_logger
from shared.retries import RetryPolicy
from shared.settings.tokens import TokensSettings
from shared.tokens import keys
from shared.tokens.errors import (
    AuthUnavailableError,
    TokenExpiredError,
    TokenRevokedError,
    TokenUnknownError,
)
from shared.tokens.principals import principal_for
from shared.tokens.records import TokenRecord, UserRecord
from shared.tokens.token_format import TokenCodec, keyed_sha256

__all__ = ["Inspection", "RedisTokenValidator", "ValidatorMetrics", "build_validator"]

log = get_logger(__name__)

_REDIS_DOWN: Final = (RedisConnectionError, RedisTimeoutError, OSError)
DEFAULT_CACHE_ENTRIES: Final = 100_000

INVALIDATION_SUBSCRIBE_RETRY: Final = RetryPolicy(
    name="token invalidation subscribe",
    on=Exception,  # whatever broke the subscription, the cache must hear invalidations again
    wait_initial=0.1,
    wait_max=2.0,
    wait_jitter=0.1,
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ValidatorMetrics(Protocol):
    """What a validator reports (the token service and the router count it)."""

    def authentication(self, outcome: str) -> None:
        """One full check: ``ok`` or the error code (``token_expired``, ...)."""

    def cache_lookup(self, *, hit: bool) -> None:
        """One cache lookup, hit or miss (a miss of authenticate_cached is counted by the
        full check that follows it, so each token check counts once)."""


@dataclass(frozen=True, slots=True)
class Inspection:
    """A successful check: who the token is and until when it is valid."""

    principal: Principal
    expires_at: datetime
    """The token's expiry, or the end of its rotation grace period if that comes first."""
    issued_at: datetime
    """When the token (or its last rotation) was issued."""


@dataclass(slots=True)
class _Entry:
    inspection: Inspection
    fresh_until: float
    """Monotonic time after which Redis is asked again."""
    valid_until: float
    """Monotonic time at which the token stops being valid whatever Redis says."""
    servable_until: float
    """Monotonic time after which not even a Redis outage lets the entry be served."""


class RedisTokenValidator:
    """Implements :class:`shared.auth.TokenValidator` on the token records in Redis."""

    def __init__(
        self,
        redis: Redis,
        codec: TokenCodec,
        *,
        channel: str,
        cache_ttl_s: float = 5.0,
        redis_down_grace_s: float = 30.0,
        last_used_throttle_s: float = 60.0,
        cache_max_entries: int = DEFAULT_CACHE_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = _utc_now,
        metrics: ValidatorMetrics | None = None,
    ) -> None:
        self._redis = redis
        self._codec = codec
        self._digest_key = codec.lookup_key
        self._channel = channel
        self._cache_ttl_s = cache_ttl_s
        self._clock = clock
        self._wall = wall_clock
        self._metrics = metrics
        self._grace_s = redis_down_grace_s
        self._cache: LRUCache[bytes, _Entry] = LRUCache(maxsize=cache_max_entries)
        # Bumped by every invalidation: a lookup that raced one does not cache its answer.
        self._generation = 0
        # Tokens whose last_used_at was written within the throttle period.
        self._touched: TTLCache[str, bool] = TTLCache(
            maxsize=cache_max_entries, ttl=last_used_throttle_s, timer=clock
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._invalidation = asyncio.Condition()

    # -- the TokenValidator protocol -------------------------------------------------------

    def authenticate_cached(self, raw_token: str) -> Principal | None:
        entry = self._cache.get(keyed_sha256(self._digest_key, raw_token.encode()))
        now = self._clock()
        if entry is None or now >= entry.fresh_until or now >= entry.valid_until:
            return None  # a miss is counted by the full check that follows
        if self._metrics is not None:
            self._metrics.cache_lookup(hit=True)
        return entry.inspection.principal

    async def authenticate(self, raw_token: str) -> Principal:
        return (await self.inspect(raw_token)).principal

    # -- the full check, shared with introspection ----------------------------------------

    async def inspect(self, raw_token: str) -> Inspection:
        """The principal and validity of ``raw_token``; raises ``UnauthenticatedError``."""
        try:
            inspection = await self._inspect(raw_token)
        except UnauthenticatedError as exc:
            if self._metrics is not None:
                self._metrics.authentication(exc.code)
            raise
        if self._metrics is not None:
            self._metrics.authentication("ok")
        return inspection

    async def _inspect(self, raw_token: str) -> Inspection:
        digest = keyed_sha256(self._digest_key, raw_token.encode())
        entry = self._cache.get(digest)
        now = self._clock()
        hit = entry is not None and now < entry.fresh_until and now < entry.valid_until
        if self._metrics is not None:
            self._metrics.cache_lookup(hit=hit)
        if hit and entry is not None:
            return entry.inspection
        self._codec.parse(raw_token)  # malformed tokens die here, before any Redis lookup
        generation = self._generation
        try:
            inspection = await self._lookup(digest)
        except _REDIS_DOWN as exc:
            if (
                entry is not None
                and digest in self._cache  # not invalidated while Redis was being asked
                and now < entry.valid_until
                and now < entry.servable_until
            ):
                log.warning(
                    "token_served_from_cache_redis_down",
                    token_id=entry.inspection.principal.token_id,
                    error=type(exc).__name__,
                )
                return entry.inspection
            raise AuthUnavailableError(
                "the token store is unreachable; try again shortly"
            ) from None
        except UnauthenticatedError:
            self._cache.pop(digest, None)
            raise
        if generation == self._generation:
            self._remember(digest, inspection, now)
        self._touch(inspection.principal.token_id, now)
        return inspection

    async def _lookup(self, digest: bytes) -> Inspection:
        digest_hex = digest.hex()
        ref = await self._redis.get(keys.token_ref_key(digest_hex))
        if ref is None:
            raise TokenUnknownError("no such token")
        token_id, _, user_id = keys.text(ref).partition("|")
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.token_key(token_id))
            if user_id:
                pipe.get(keys.user_key(user_id))
            found = await pipe.execute()
        if found[0] is None:
            raise TokenUnknownError("no such token")
        token = TokenRecord.model_validate_json(found[0])
        user = UserRecord.model_validate_json(found[1]) if user_id and found[1] else None
        wall = self._wall()
        expires_at = token.expires_at
        if token.revoked_at is not None:
            raise TokenRevokedError("this token has been revoked", token_id=token.id)
        if not hmac.compare_digest(token.digest, digest_hex):
            previous = token.previous_digest
            if previous is None or not hmac.compare_digest(previous, digest_hex):
                raise TokenRevokedError("this secret was replaced by rotation", token_id=token.id)
            until = token.previous_until
            if until is None or until <= wall:
                raise TokenRevokedError(
                    "this secret was replaced by rotation and its grace period is over",
                    token_id=token.id,
                )
            expires_at = min(expires_at, until)
        if token.expires_at <= wall:
            raise TokenExpiredError("this token has expired", token_id=token.id)
        return Inspection(
            principal=principal_for(token, user),
            expires_at=expires_at,
            issued_at=token.rotated_at or token.created_at,
        )

    def _remember(self, digest: bytes, inspection: Inspection, now: float) -> None:
        remaining = (inspection.expires_at - self._wall()).total_seconds()
        self._cache[digest] = _Entry(  # a full cache evicts its least recently used entry
            inspection=inspection,
            fresh_until=now + self._cache_ttl_s,
            valid_until=now + remaining,
            servable_until=now + self._cache_ttl_s + self._grace_s,
        )

    def _touch(self, token_id: str, now: float) -> None:
        """Record ``last_used_at``, at most once per token per throttle period, off the path."""
        if token_id in self._touched:
            return
        self._touched[token_id] = True
        task = asyncio.get_running_loop().create_task(self._write_last_used(token_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_last_used(self, token_id: str) -> None:
        with contextlib.suppress(*_REDIS_DOWN):
            await self._redis.set(keys.token_last_used_key(token_id), self._wall().isoformat())

    # -- invalidation ----------------------------------------------------------------------

    def invalidate(self, message: str) -> int:
        """Apply one invalidation (``token:<id>``, ``user:<id>`` or ``all``); returns the
        number of cache entries dropped. Called by the pub/sub listener."""
        self._generation += 1
        kind, _, ident = message.partition(":")
        if kind == "all":
            dropped = len(self._cache)
            self._cache.clear()
            return dropped
        if kind == "token":
            doomed = [d for d, e in self._cache.items() if e.inspection.principal.token_id == ident]
        elif kind == "user":
            doomed = [d for d, e in self._cache.items() if e.inspection.principal.user_id == ident]
        else:
            return 0
        for digest in doomed:
            del self._cache[digest]
        return len(doomed)

    def _mark_all_stale(self) -> None:
        """Invalidations may have been missed: re-check every entry on next use, but keep them
        for the Redis-outage grace."""
        self._generation += 1
        for entry in self._cache.values():
            entry.fresh_until = 0.0

    @property
    def listening(self) -> bool:
        """True while the pub/sub subscription is live (for readiness checks)."""
        return self._subscribed.is_set()

    async def start(self, *, wait_s: float = 5.0) -> None:
        """Start the invalidation listener; waits up to ``wait_s`` for the subscription."""
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), timeout=wait_s)

    async def next_invalidation(self) -> None:
        """Return once the listener has applied the next invalidation message (lets tests and
        tools await the event instead of polling)."""
        async with self._invalidation:
            await self._invalidation.wait()

    async def flush(self) -> None:
        """Wait for the background ``last_used_at`` writes started so far."""
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task

    async def _listen(self) -> None:
        """Subscribe (retried with backoff), serve invalidations until the connection is lost,
        then subscribe again with a fresh backoff."""
        while True:
            pubsub: PubSub | None = None
            try:
                async for attempt in INVALIDATION_SUBSCRIBE_RETRY.retrying():
                    with attempt:
                        pubsub = await self._subscribe()
                if pubsub is not None:
                    await self._serve_invalidations(pubsub)
            finally:
                self._subscribed.clear()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py

    async def _subscribe(self) -> PubSub:
        pubsub: PubSub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel)
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None and message["type"] == "subscribe":
                    break
        except Exception:
            self._mark_all_stale()  # Redis is away: keep serving the cache, re-check on use
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py
            raise
        self._mark_all_stale()  # covers whatever was missed while away
        self._subscribed.set()
        log.info("token_invalidation_listening", channel=self._channel)
        return pubsub

    async def _serve_invalidations(self, pubsub: PubSub) -> None:
        """Apply invalidations until the subscription breaks (returns; cancellation raises)."""
        try:
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message["type"] == "message":
                    self.invalidate(keys.text(message["data"]))
                    async with self._invalidation:
                        self._invalidation.notify_all()
        except Exception as exc:  # Redis went away: keep serving the cache, reconnect
            log.warning("token_invalidation_lost", error=type(exc).__name__)
            self._subscribed.clear()
            self._mark_all_stale()


def build_validator(
    settings: TokensSettings,
    redis: Redis,
    *,
    metrics: ValidatorMetrics | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RedisTokenValidator:
    """The validator for a service, configured from its settings (call at start-up)."""
    return RedisTokenValidator(
        redis,
        TokenCodec(settings.hmac_secret.get_secret_value().encode()),
        channel=settings.invalidation_channel,
        cache_ttl_s=settings.cache_ttl_s,
        redis_down_grace_s=settings.redis_down_grace_s,
        last_used_throttle_s=settings.last_used_throttle_s,
        cache_max_entries=settings.cache_max_entries,
        metrics=metrics,
        clock=clock,
    )
