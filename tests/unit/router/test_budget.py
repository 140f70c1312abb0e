"""The pipeline's bound is on records in flight, not batches (services/router/budget.py)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from services.router.budget import InFlightBudget


def _blocked(attempt: Generator[Any, None, None]) -> bool:
    """Step an ``acquire`` by hand: True if it suspended (waits for records to be settled),
    False if it finished. No event loop turn and no clock decide the outcome."""
    try:
        attempt.send(None)
    except StopIteration:
        return False
    return True


async def test_small_batches_share_the_budget_of_one_full_batch() -> None:
    budget = InFlightBudget(500)
    for _ in range(50):  # fifty 10-record batches: no waiting on each other's acks
        assert not _blocked(budget.acquire(10).__await__())
    assert budget.in_flight == 500


async def test_a_batch_that_does_not_fit_waits_until_records_are_settled() -> None:
    budget = InFlightBudget(1000)
    await budget.acquire(600)
    attempt = budget.acquire(500).__await__()
    assert _blocked(attempt)
    assert budget.in_flight == 600
    budget.release(600)
    assert not _blocked(attempt)
    assert budget.in_flight == 500


async def test_a_batch_larger_than_the_limit_goes_alone() -> None:
    budget = InFlightBudget(100)
    assert not _blocked(budget.acquire(250).__await__())  # nothing in flight: never stuck
    attempt = budget.acquire(1).__await__()
    assert _blocked(attempt)
    budget.release(250)
    assert not _blocked(attempt)
    assert budget.in_flight == 1


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        InFlightBudget(0)
