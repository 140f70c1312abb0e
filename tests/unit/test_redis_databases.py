"""Benchmarks and tests flush their Redis database: never the one ``make run``'s demo lives in."""

from __future__ import annotations

import pytest

from bench import BENCH_REDIS_DB, redis_url
from shared.redis import with_database
from tests._infra import TEST_REDIS_DB


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


def test_each_user_of_the_stack_has_its_own_database() -> None:
    assert len({0, BENCH_REDIS_DB, TEST_REDIS_DB}) == 3  # make run, benchmarks, tests
    assert with_database("rediss://cache:6380/2?ssl_cert_reqs=none", 7) == (
        "rediss://cache:6380/7?ssl_cert_reqs=none"
    )
