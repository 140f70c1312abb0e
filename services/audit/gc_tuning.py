"""Garbage-collector settings for the audit process, applied once start-up is done.

The consumer creates about ten container objects per event (the validated model, its dicts, the
document being encoded) and drops nearly all of them when the batch is written. With CPython's
default first threshold (700 allocations) a collection runs every ~70 events, and the objects
of the batch in hand survive it, get promoted and are walked again by the older generations.
With 10,000 a batch's garbage mostly dies young. Freezing what start-up built (modules,
schemas, the app, the recovered log) keeps the full collections from walking it at all.
Together they take about a fifth to a quarter off the CPU per consumed event (docs/audit.md,
Performance). Collection still runs; cycles are still freed.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["GEN0_THRESHOLD", "tune_gc"]

GEN0_THRESHOLD: Final = 10_000
"""Allocations (net of frees) between two young-generation collections."""


def tune_gc() -> tuple[int, int, int]:
    """Freeze the start-up objects and raise the first threshold; returns the old thresholds
    (a benchmark that shares its process with others puts them back)."""
    previous = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, previous[1], previous[2])
    return previous
