"""The compiled ruleset every router process holds in memory, swapped when the version moves.

A pub/sub notice makes the swap quick; a periodic version check makes it certain (notices are
fire-and-forget). When Redis cannot be read the last compiled ruleset stays in use, the outage
is logged and shown in metrics, and routing never falls back to an empty ruleset.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Final, cast

from prometheus_client import Counter, Gauge
from redis.asyncio.client import PubSub

from services.rules.control.store import RulesStore, decode_ruleset
from services.rules.engine.compiled import CompiledRuleset, compile_ruleset
from shared.errors import UnavailableError
from shared.logging import get_logger
from shared.retries import RetryPolicy

__all__ = ["LOADED_VERSION", "RELOAD_FAILURES", "STALE", "LiveRuleset", "RulesNotLoadedError"]

log = get_logger(__name__)

RULES_FOLLOW_RETRY: Final = RetryPolicy(
    name="following the stored ruleset after a Redis error",
    on=Exception,  # whatever broke, keep the ruleset in hand and try again
    wait_initial=0.1,
    wait_max=5.0,
)

LOADED_VERSION = Gauge(
    "alertyard_rules_loaded_version", "Version of the compiled ruleset this process routes with"
)
RELOAD_FAILURES = Counter(
    "alertyard_rules_reload_failures_total",
    "Failed attempts to read or compile the stored ruleset (the last good one stays in use)",
)
STALE = Gauge(
    "alertyard_rules_stale",
    "1 while the stored ruleset cannot be checked and the last compiled one is kept",
)


class RulesNotLoadedError(UnavailableError):
    """No ruleset has been loaded yet (Redis unreachable since start-up)."""

    code = "rules_not_loaded"


class LiveRuleset:
    """Holds :attr:`current` and keeps it up to date until :meth:`stop`."""

    def __init__(self, store: RulesStore, *, check_interval_s: float = 1.0) -> None:
        self._store = store
        self._interval = check_interval_s
        self._current: CompiledRuleset | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._loaded_event = asyncio.Event()
        self._changes = asyncio.Condition()
        self.swaps = 0
        """How many times a new version was swapped in (for tests and metrics)."""

    @property
    def loaded(self) -> bool:
        return self._current is not None

    @property
    def current(self) -> CompiledRuleset:
        """The compiled ruleset in use; :class:`RulesNotLoadedError` before the first load."""
        if self._current is None:
            raise RulesNotLoadedError("no routing ruleset loaded yet; is Redis reachable?")
        return self._current

    async def start(self, *, wait_s: float = 5.0) -> None:
        """Start watching; waits up to ``wait_s`` for the first load (does not raise if Redis is
        down: :attr:`loaded` stays False and loading keeps being retried)."""
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="live-ruleset")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._loaded_event.wait(), timeout=wait_s)

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> bool:
        """Load and swap in the stored ruleset if its version moved; True when it swapped.

        Raises on a Redis or decoding error (the caller counts it and keeps the old ruleset).
        """
        version = await self._store.get_version()
        current = self._current
        if current is not None and version <= current.version:
            return False
        raw = cast(bytes | None, await self._store.redis.get(self._store.keys.current))
        compiled = await asyncio.to_thread(lambda: compile_ruleset(decode_ruleset(raw)))
        if self._current is not None and compiled.version <= self._current.version:
            return False  # never go backwards, whatever raced
        self._current = compiled
        self.swaps += 1
        LOADED_VERSION.set(compiled.version)
        self._loaded_event.set()
        log.info("ruleset_swapped", version=compiled.version, rules=len(compiled.ruleset.rules))
        await self._announce()
        return True

    async def _announce(self) -> None:
        async with self._changes:
            self._changes.notify_all()

    async def next_change(self) -> None:
        """Return after the next swap or failed refresh (lets tests and tools await the event
        instead of polling)."""
        async with self._changes:
            await self._changes.wait()

    async def _run(self) -> None:
        """Follow the stored ruleset; after an outage, resubscribe with backoff (stop cancels)."""
        while not self._stopping.is_set():
            async for attempt in RULES_FOLLOW_RETRY.retrying():
                with attempt:
                    await self._follow()

    async def _follow(self) -> None:
        """Subscribe to change notices and refresh on each (and periodically) until an error."""
        pubsub: PubSub = self._store.redis.pubsub()
        try:
            await pubsub.subscribe(self._store.keys.channel)
            await self.refresh()
            STALE.set(0)
            while not self._stopping.is_set():
                # A notice wakes us at once; the timeout is the periodic version check.
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=self._interval)
                await self.refresh()
                STALE.set(0)
        except Exception as exc:  # an outage: keep routing with what we have
            RELOAD_FAILURES.inc()
            STALE.set(1)
            log.warning(
                "ruleset_refresh_failed",
                error=f"{exc.__class__.__name__}: {exc}",
                kept_version=self._current.version if self._current else None,
            )
            await self._announce()
            raise
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated upstream
