"""Token checks: warm-cache validation cost and revocation -> rejection latency.

* ``cache_hit``: median of single ``authenticate_cached`` calls (target <= 5 us), next to a
  same-run baseline of the irreducible work (an HMAC-SHA256 of the token + one dict lookup).
* ``revocation``: two validator *processes* each cache N tokens; the parent revokes them one by
  one and each child records when its cache stops accepting the token (target p99 <= 1 s).

Uses database 15 of ``REDIS_URL``'s server (``bench.redis_url``); writes only ``alertyard:*`` keys
of fresh test tokens.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from bench import redis_url as bench_redis_url
from services.tokens.service import TokenService
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.logging import configure_logging
from shared.redis import make_redis
from shared.tokens.token_format import keyed_sha256
from shared.tokens.validator import build_validator

_CHECKS = 200_000
_REVOKED = 60


def _median_ns(fn: Any, arg: str, n: int) -> float:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(n):
        start = clock()
        fn(arg)
        samples.append(clock() - start)
    return statistics.median(samples)


async def _cache_hit() -> dict[str, Any]:
    settings = test_settings(bench_redis_url())
    redis = make_redis(settings.redis_url)
    raw, _ = await issue_token(redis, settings, permissions=[Permission.alerts_publish])
    validator = build_validator(settings.model_copy(update={"cache_ttl_s": 3600}), redis)
    await validator.authenticate(raw)
    key = keyed_sha256(b"k" * 32, b"x")
    table = {keyed_sha256(key, raw.encode()): object()}

    def baseline(token: str) -> object:
        return table.get(keyed_sha256(key, token.encode()))

    _median_ns(validator.authenticate_cached, raw, 10_000)  # warm up
    hit = _median_ns(validator.authenticate_cached, raw, _CHECKS)
    base = _median_ns(baseline, raw, _CHECKS)
    await validator.stop()
    await redis.aclose()
    return {
        "checks": _CHECKS,
        "median_us": round(hit / 1000, 3),
        "baseline_hmac_plus_dict_median_us": round(base / 1000, 3),
        "target_median_us": 5.0,
        "meets_target": hit / 1000 <= 5.0,
    }


async def _child(tokens: list[str]) -> None:
    """Cache ``tokens``, say ready, then report when each one stops being accepted."""
    settings = test_settings(bench_redis_url(), cache_ttl_s=3600)
    redis = make_redis(settings.redis_url)
    validator = build_validator(settings, redis)
    await validator.start()
    for raw in tokens:
        await validator.authenticate(raw)
    print("ready", flush=True)
    rejected: dict[int, float] = {}
    deadline = time.monotonic() + 60
    while len(rejected) < len(tokens) and time.monotonic() < deadline:
        for i, raw in enumerate(tokens):
            if i not in rejected and validator.authenticate_cached(raw) is None:
                rejected[i] = time.monotonic()
        await asyncio.sleep(0.0005)
    print(json.dumps(rejected), flush=True)
    await validator.stop()
    await redis.aclose()


async def _revocation() -> dict[str, Any]:
    settings = test_settings(bench_redis_url())
    redis = make_redis(settings.redis_url)
    issued = [await issue_token(redis, settings) for _ in range(_REVOKED)]
    payload = json.dumps([raw for raw, _ in issued])
    children = [
        subprocess.Popen(  # noqa: ASYNC220  # set-up before timing; blocking is harmless here
            [sys.executable, "-m", "bench.bench_tokens", "--child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for child in children:
        assert child.stdin is not None
        child.stdin.write(payload + "\n")
        child.stdin.close()
    for child in children:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    service = TokenService(redis, settings)
    revoked_at = []
    for _, principal in issued:
        # Measured from the start of the revoke call (CLOCK_MONOTONIC is system-wide, so the
        # children's timestamps compare): the notice may arrive before the call returns.
        revoked_at.append(time.monotonic())
        await service.revoke_token(token_id=principal.token_id, actor=None)
        await asyncio.sleep(0.02)
    latencies = []
    for child in children:
        assert child.stdout is not None
        seen = {int(k): v for k, v in json.loads(child.stdout.readline()).items()}
        child.wait(timeout=30)
        latencies += [(seen[i] - revoked_at[i]) * 1000 for i in range(_REVOKED)]
    await redis.aclose()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {
        "processes": 2,
        "revocations": _REVOKED,
        "median_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(p99, 3),
        "max_ms": round(latencies[-1], 3),
        "target_p99_ms": 1000,
        "meets_target": p99 <= 1000,
    }


def run() -> dict[str, Any]:
    configure_logging("warning", "json")
    return {"cache_hit": asyncio.run(_cache_hit()), "revocation": asyncio.run(_revocation())}


if __name__ == "__main__":
    configure_logging("warning", "json")  # to stderr: stdout is the child's reporting pipe
    if sys.argv[1:] == ["--child"]:
        asyncio.run(_child(json.loads(sys.stdin.readline())))
    else:
        print(json.dumps(run(), indent=2))
