"""The pipeline's bound is on records in flight, not batches (services/router/budget.py)."""

from __future__ import annotations

import asyncio

import pytest

from services.router.budget import InFlightBudget


async def _settle() -> None:
    for _ in range(5):  # let every ready task run (no wall clock involved)
        await asyncio.sleep(0)


async def test_small_batches_share_the_budget_of_one_full_batch() -> None:
    budget = InFlightBudget(500)
    for _ in range(50):  # fifty 10-record batches: no waiting on each other's acks
        await budget.acquire(10)
    assert budget.in_flight == 500


async def test_a_batch_that_does_not_fit_waits_until_records_are_settled() -> None:
    budget = InFlightBudget(1000)
    await budget.acquire(600)
    waiting = asyncio.create_task(budget.acquire(500))
    await _settle()
    assert not waiting.done()
    budget.release(600)
    await asyncio.wait_for(waiting, timeout=5)
    assert budget.in_flight == 500


async def test_a_batch_larger_than_the_limit_goes_alone() -> None:
    budget = InFlightBudget(100)
    await budget.acquire(250)  # nothing in flight: admitted, never stuck
    waiting = asyncio.create_task(budget.acquire(1))
    await _settle()
    assert not waiting.done()
    budget.release(250)
    await asyncio.wait_for(waiting, timeout=5)


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        InFlightBudget(0)
