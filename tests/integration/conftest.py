"""Fixtures shared by the integration tests that need a Redis of their own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration._redis_server import ThrowawayRedis


@pytest.fixture
async def own_redis() -> AsyncIterator[ThrowawayRedis]:
    """A redis-server of the test's own on the stack's settings (AOF), never the shared one:
    for tests that kill and restart it."""
    server = ThrowawayRedis()
    await server.start()
    yield server
    server.stop()


@pytest.fixture
async def own_redis_fsync_always() -> AsyncIterator[ThrowawayRedis]:
    """:func:`own_redis` acknowledging only what is on disk: for drills of the router's or the
    indexer's guarantees, which a disk that stalls Redis's ``everysec`` fsync must not decide."""
    server = ThrowawayRedis(fsync_always=True)
    await server.start()
    yield server
    server.stop()
