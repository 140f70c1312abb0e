"""How much the router's pipeline holds: records handed to the producer, not yet settled.

The bound is on records, not batches. Under a backlog every batch is full and this is the same
as ``pipeline_depth`` batches in flight; at a steady low rate a fetch returns a handful of
records, and a bound of a few batches made the next fetch wait for the acks of the previous
ones (measured at 2,000 alerts/s: 12 ms at p90, 26 ms at p99 spent waiting for a slot).
"""

from __future__ import annotations

import asyncio

__all__ = ["InFlightBudget"]


class InFlightBudget:
    """Admits a batch while the records in flight plus its own stay within ``limit``; a batch
    larger than the limit is admitted alone, so nothing waits forever. One acquirer (the
    router's dispatch loop); releases come from the settle stage on the same event loop."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.in_flight = 0
        self._freed = asyncio.Event()

    def _fits(self, records: int) -> bool:
        return self.in_flight == 0 or self.in_flight + records <= self.limit

    async def acquire(self, records: int) -> None:
        while not self._fits(records):
            self._freed.clear()
            await self._freed.wait()
        self.in_flight += records

    def release(self, records: int) -> None:
        self.in_flight -= records
        self._freed.set()
