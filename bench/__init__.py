"""Benchmarks (``make bench``): each compares against a same-run baseline and reports ratios."""

from __future__ import annotations

import os
from typing import Final

from shared.redis import with_database

__all__ = ["BENCH_REDIS_DB", "redis_url"]

BENCH_REDIS_DB: Final = 15


def redis_url() -> str:
    """The Redis server ``REDIS_URL`` names (default the local stack's), database 15 whatever
    database the URL names: benchmarks flush their database, and ``make run`` keeps the demo's
    tokens and decisions in database 0 (the tests use 14)."""
    return with_database(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), BENCH_REDIS_DB)
