"""One way for tests to wait on state that another process changes (and so cannot be awaited)."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

__all__ = ["eventually"]


async def eventually(
    check: Callable[[], object],
    *,
    what: str,
    within: float = 60.0,
    every: float = 0.1,
) -> None:
    """Poll ``check()`` (plain or async) until it returns something truthy; fail naming
    ``what`` after ``within`` seconds. The bound is a failure deadline, not a timing
    assumption: a fast machine simply returns sooner."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(every)
