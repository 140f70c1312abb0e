"""Process-level tuning of the garbage collector for a long-running router.

Routing allocates many short-lived objects per record (records, alerts, headers, futures) and
keeps a few batches of them alive while their acks are awaited. With CPython's default
thresholds (700, 10, 10) those in-flight objects get promoted and trigger frequent full
collections that walk the whole heap, including everything start-up allocated: measured at
15% of the router's CPU and pauses of 15-40 ms (a latency spike per pause). Freezing the heap
once started and collecting the young generation less often removes most of that work.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["GC_THRESHOLDS", "tune_gc"]

GC_THRESHOLDS: Final = (10_000, 10, 10)
"""Young-generation threshold raised from 700: a young pass then sees whole batches die."""


def tune_gc() -> None:
    """Call once the service has started: freeze what start-up allocated, raise thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
