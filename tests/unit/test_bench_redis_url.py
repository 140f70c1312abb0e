"""Benchmarks flush their Redis database: never the one ``make run``'s demo lives in."""

from __future__ import annotations

import pytest

from bench import BENCH_REDIS_DB, redis_url


@pytest.mark.parametrize(
    ("given", "used"),
    [
        (None, f"redis://127.0.0.1:6379/{BENCH_REDIS_DB}"),
        ("redis://127.0.0.1:6379/0", f"redis://127.0.0.1:6379/{BENCH_REDIS_DB}"),
        ("redis://:secret@cache:6380", f"redis://:secret@cache:6380/{BENCH_REDIS_DB}"),
        ("unix:///run/redis.sock?db=0", f"unix:///run/redis.sock?db={BENCH_REDIS_DB}"),
    ],
)
def test_benchmarks_use_their_own_database(
    given: str | None, used: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if given is None:
        monkeypatch.delenv("REDIS_URL", raising=False)
    else:
        monkeypatch.setenv("REDIS_URL", given)
    assert redis_url() == used
