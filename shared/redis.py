"""Connecting to Redis (redis-py asyncio)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.asyncio import Redis

__all__ = ["make_redis", "with_database"]


def make_redis(url: str) -> Redis:
    """A client that returns bytes (tokens, hashes and JSON are handled as bytes on purpose)."""
    client: Redis = Redis.from_url(
        url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
    )
    return client


def with_database(url: str, db: int) -> str:
    """``url`` (``redis://``, ``rediss://`` or ``unix://``) naming database ``db`` instead."""
    parts = urlsplit(url)
    if parts.scheme == "unix":  # unix:///path/to/socket?db=N
        query = dict(parse_qsl(parts.query))
        query["db"] = str(db)
        return f"unix://{parts.path}?{urlencode(query)}"  # urlunsplit would drop the "//"
    return urlunsplit(parts._replace(path=f"/{db}"))
