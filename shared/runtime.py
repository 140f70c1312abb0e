"""Process-level tuning of CPython's garbage collector for long-running services.

The router and the audit consumer allocate many short-lived objects per record (records,
models, headers, futures, the documents being encoded) and keep a batch or a few of them alive
while a write or the acks are awaited. With the default first threshold (700 allocations) a
young collection runs every few dozen records, the in-flight batch survives it, is promoted and
is walked again by the older generations, which also walk everything start-up allocated:
measured at 15-20% of the CPU per record, with full passes of 15-40 ms (a latency spike each).
Freezing the start-up heap once and collecting the young generation less often removes most of
that work; collection still runs and cycles are still freed.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["GEN0_THRESHOLD", "tune_gc"]

GEN0_THRESHOLD: Final = 10_000
"""Allocations (net of frees) between two young-generation collections; a young pass then sees
whole batches die."""


def tune_gc() -> tuple[int, int, int]:
    """Call once start-up is done: freeze what it built and raise the first threshold.

    Returns the previous thresholds, so a benchmark sharing its process can put them back.
    """
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, previous[1], previous[2])
    return previous
