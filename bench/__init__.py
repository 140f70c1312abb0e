"""Benchmarks (``make bench``): each compares against a same-run baseline and reports ratios."""

from __future__ import annotations

import os
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["BENCH_REDIS_DB", "redis_url"]

BENCH_REDIS_DB: Final = 15


def redis_url() -> str:
    """The Redis server ``REDIS_URL`` names (default the local stack's), database 15 whatever
    database the URL names: benchmarks flush their database, and ``make run`` keeps the demo's
    tokens and decisions in database 0."""
    url = urlsplit(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    if url.scheme == "unix":  # unix:///path/to/socket?db=N
        query = dict(parse_qsl(url.query))
        query["db"] = str(BENCH_REDIS_DB)
        return f"unix://{url.path}?{urlencode(query)}"  # urlunsplit would drop the "//"
    return urlunsplit(url._replace(path=f"/{BENCH_REDIS_DB}"))
