"""Connecting to Redis (redis-py asyncio)."""

from __future__ import annotations

from redis.asyncio import Redis

__all__ = ["make_redis"]


def make_redis(url: str) -> Redis:
    """A client that returns bytes (tokens, hashes and JSON are handled as bytes on purpose)."""
    client: Redis = Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
    )
    return client
