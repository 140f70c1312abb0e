"""The failed-auth limiter reaches Redis over TCP and over a unix socket (limits' URL scheme)."""

from __future__ import annotations

import pytest

from shared.http_auth import _limits_uri


@pytest.mark.parametrize(
    ("redis_url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "async+redis://127.0.0.1:6379/0"),
        ("rediss://cache:6380/1", "async+rediss://cache:6380/1"),
        ("unix:///tmp/redis.sock?db=0", "async+redis+unix:///tmp/redis.sock?db=0"),
    ],
)
def test_limits_uri(redis_url: str, expected: str) -> None:
    assert _limits_uri(redis_url) == expected
