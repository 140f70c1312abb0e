"""The collector settings the router and the audit service apply once started."""

from __future__ import annotations

import gc

from shared.runtime import GEN0_THRESHOLD, tune_gc


def test_tune_gc_freezes_start_up_and_raises_the_first_threshold() -> None:
    before = gc.get_threshold()
    try:
        assert tune_gc() == before
        assert gc.get_threshold() == (GEN0_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
        assert gc.isenabled()  # tuned, not switched off: cycles are still collected
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
