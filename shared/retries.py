"""Retry policies (stamina): exponential backoff with jitter and a ceiling.

Every call site that retries declares one named :class:`RetryPolicy` beside it (for example
``PUBLISH_RETRY`` in the router's publisher) and runs its block as::

    async for attempt in PUBLISH_RETRY.retrying():
        with attempt:
            ...

The block runs again after a backoff while it raises one of the policy's exceptions. Unit tests
make every retry instant with ``stamina.set_testing`` (``tests/unit/conftest.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from dataclasses import dataclass

import stamina
from stamina.instrumentation import StructlogOnRetryHook, set_on_retry_hooks

__all__ = ["RetryLater", "RetryPolicy"]

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
    on: type[Exception] | tuple[type[Exception], ...]
    wait_initial: float
    wait_max: float
    wait_jitter: float = 0.1
    attempts: int | None = None
    timeout: float | None = None

    def retrying(self) -> AsyncIterable[stamina.Attempt]:
        """A fresh retry iterator for one run of the block (the backoff starts again)."""
        return stamina.retry_context(
            on=self.on,
            attempts=self.attempts,
            timeout=self.timeout,
            wait_initial=self.wait_initial,
            wait_max=self.wait_max,
            wait_jitter=self.wait_jitter,
        )
