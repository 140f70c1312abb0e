"""Retry policies (stamina): exponential backoff with jitter and a ceiling.

Every call site that retries declares one named :class:`RetryPolicy` beside it (for example
``PUBLISH_RETRY`` in the router's publisher) and runs its block as::

    async for attempt in PUBLISH_RETRY.retrying():
        with attempt:
            ...

The block runs again after a backoff while it raises one of the policy's exceptions. Unit tests
make every retry instant with ``stamina.set_testing`` (``tests/unit/conftest.py``).

A cancelled task is never retried, even when what it awaited swallowed the ``CancelledError``:
redis-py, when a cancel lands just as its connection resets, raises the ``ConnectionError``
instead, and a retry-until-it-works block would then outlive every cancel (the outbox relay did,
and hung a CI run). An error raised while the task has a pending cancel ends the block as that
cancel (:func:`cancel_requested`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import stamina
from stamina.instrumentation import StructlogOnRetryHook, set_on_retry_hooks

__all__ = ["RetryLater", "RetryPolicy", "cancel_requested"]

RetryOn = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]
"""What a policy retries: exception types, or a hook that decides (and may log)."""

# Retries are logged (structlog, like every other line); stamina's default Prometheus hook is
# left out because it labels its counter with the attempt number, an unbounded label set for
# the policies below that retry until a dependency is back.
set_on_retry_hooks([StructlogOnRetryHook])


class RetryLater(Exception):  # noqa: N818  # a signal, not an error
    """Raised inside an attempt when part of its work is still to be done (unacked records,
    tokens Redis could not check); the caller keeps what is left between attempts."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how a block is tried again. ``attempts`` and ``timeout`` None: until it works or
    the caller cancels (services that must not drop work while a dependency is down)."""

    name: str
    """What is retried (for logs and the reader)."""
    on: RetryOn
    wait_initial: float
    wait_max: float
    wait_jitter: float = 0.1
    attempts: int | None = None
    timeout: float | None = None

    def retrying(self) -> AsyncIterator[stamina.Attempt]:
        """A fresh retry iterator for one run of the block (the backoff starts again)."""
        return _CancelAware(
            stamina.retry_context(
                on=self._retries,
                attempts=self.attempts,
                timeout=self.timeout,
                wait_initial=self.wait_initial,
                wait_max=self.wait_max,
                wait_jitter=self.wait_jitter,
            )
        )

    def _retries(self, error: BaseException) -> bool:
        # stamina hands a CancelledError to the hook as well: never retried.
        if not isinstance(error, Exception) or cancel_requested():
            return False
        if isinstance(self.on, type | tuple):
            return isinstance(error, self.on)
        return self.on(error)


def cancel_requested() -> bool:
    """The running task was asked to stop and has not acknowledged it (``Task.cancelling``)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class _CancelAware:
    """stamina's iterator, but the error that ends a block while a cancel is pending is raised
    as ``CancelledError`` (from the error), so the caller stops as cancelled."""

    def __init__(self, attempts: AsyncIterator[stamina.Attempt]) -> None:
        self._attempts = attempts

    def __aiter__(self) -> _CancelAware:
        self._attempts = aiter(self._attempts)
        return self

    async def __anext__(self) -> stamina.Attempt:
        try:
            return await anext(self._attempts)
        except Exception as error:
            if cancel_requested():
                raise asyncio.CancelledError from error
            raise
