"""Retry policies: a block runs again until it works; no unbounded metric labels."""

from __future__ import annotations

import asyncio

import pytest
import stamina
from prometheus_client import REGISTRY
from stamina.instrumentation import get_on_retry_hooks

from shared.retries import RetryLater, RetryPolicy

POLICY = RetryPolicy(name="test", on=RetryLater, wait_initial=0.01, wait_max=0.1)


async def test_the_block_runs_until_it_works() -> None:
    calls = 0
    async for attempt in POLICY.retrying():
        with attempt:
            calls += 1
            if calls < 4:
                raise RetryLater
    assert calls == 4


async def _always(policy: RetryPolicy, error: Exception, calls: list[int]) -> None:
    async for attempt in policy.retrying():
        with attempt:
            calls.append(1)
            raise error


async def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []
    with pytest.raises(KeyError):
        await _always(POLICY, KeyError("final"), calls)
    assert len(calls) == 1


async def test_a_bounded_policy_gives_up() -> None:
    bounded = RetryPolicy(
        name="bounded", on=RetryLater, wait_initial=0.01, wait_max=0.1, attempts=3
    )
    calls: list[int] = []
    with stamina.set_testing(True, attempts=3), pytest.raises(RetryLater):
        await _always(bounded, RetryLater(), calls)
    assert len(calls) == 3


def test_retries_add_no_prometheus_series() -> None:
    hooks = get_on_retry_hooks()
    assert hooks  # retries are still logged
    assert all("prometheus" not in repr(hook).lower() for hook in hooks)
    assert REGISTRY.get_sample_value("stamina_retries_total") is None


async def test_an_error_raised_by_a_swallowed_cancel_ends_the_block_as_cancelled() -> None:
    # The awaited call turns the cancel into a retried error, as redis-py does when the cancel
    # lands while its connection resets; the block must not run again.
    calls: list[int] = []
    waiting = asyncio.Event()

    async def block() -> None:
        async for attempt in POLICY.retrying():
            with attempt:
                if calls:
                    raise KeyError("the block ran again")  # not retried: fails the test
                calls.append(1)
                waiting.set()
                try:
                    await asyncio.Event().wait()  # a reply that never comes
                except asyncio.CancelledError:
                    raise RetryLater from None

    task = asyncio.create_task(block())
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError) as raised:
        await task
    assert isinstance(raised.value.__cause__, RetryLater)
    assert len(calls) == 1
