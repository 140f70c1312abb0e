"""A relay stops on cancel even when a client library swallows the ``CancelledError``."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.outbox import OutboxRelay


class _SwallowingRelay(OutboxRelay):
    """Its Redis call turns the cancel into a connection error, as redis-py does when the
    cancel lands while its connection resets; a second attempt would stop the relay cleanly."""

    def __init__(self, redis: Redis) -> None:
        super().__init__(redis, None, source="t", topic="t", request_timeout_s=1)
        self.attempts = 0
        self.waiting = asyncio.Event()

    async def relay_once(self) -> int:
        self.attempts += 1
        if self.attempts > 1:
            self.stop()  # the relay retried the swallowed cancel: end without CancelledError
            return 0
        self.waiting.set()
        try:
            await asyncio.Event().wait()  # a reply that never comes
        except asyncio.CancelledError:
            raise RedisConnectionError("Connection reset by peer") from None
        return 0


async def _relay_cancelled_mid_call(relay: _SwallowingRelay) -> None:
    task = asyncio.create_task(relay.run())
    await relay.waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_swallowed_cancel_is_not_retried() -> None:
    # No server on port 1: the lease release in the relay's cleanup fails fast and is ignored.
    redis = Redis(host="127.0.0.1", port=1)
    relay = _SwallowingRelay(redis)
    try:
        await _relay_cancelled_mid_call(relay)
    finally:
        await redis.aclose()
    assert relay.attempts == 1, "the connection error raised by the cancel was retried"
