"""Drill (#14): Redis killed -9 mid-stream and restarted, on the stack's own settings (AOF).

A router process (``alertyard serve router``, defaults: decisions through the decisions topic)
routes a paced stream; Redis is killed -9 after a fifth arrived and restarted after another
fifth was routed on the cached token. Counts sent, delivered, duplicated and lost alerts and
missing lookups; afterwards the token and the rules are still in Redis and every lookup is there
once the indexer caught up.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest

from services.rules.control.store import RulesStore
from services.rules.engine.model import Ruleset
from services.tokens.testing import test_settings
from shared.tokens.validator import build_validator
from tests.integration._redis_server import ThrowawayRedis
from tests.integration.router._harness import (
    Collector,
    RouterProcesses,
    lookups_missing,
    router_settings,
    seed_rules_and_token,
    send_stream,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

SENT = 5_000
RULESET = Ruleset.model_validate(
    {"rules": [{"name": "all", "owner_team": "ops", "destinations": ["ops"], "fallback": True}]}
)


async def test_redis_kill9_mid_stream_loses_nothing(
    kafka_bootstrap: str, own_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    redis = own_redis.client()
    tokens = test_settings(own_redis.url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    version = (await RulesStore(redis).get_ruleset()).version
    settings = router_settings(kafka_bootstrap, own_redis.url)
    topic = settings.topics.team_topic("ops")
    collector = Collector(kafka_bootstrap, [topic])
    routers = RouterProcesses(settings, tokens, tmp_path)
    ids = [uuid.uuid4().hex for _ in range(SENT)]
    await collector.start()

    def delivered() -> int:
        return len(collector.records[topic])

    try:
        router = await routers.start("a")
        streaming = asyncio.create_task(
            send_stream(kafka_bootstrap, settings.topics.alerts, ids, token=token, pause_s=0.02)
        )
        await collector.wait_for(lambda: delivered() >= SENT // 5, within=60)
        own_redis.kill9()  # mid-stream
        killed_at = delivered()
        await collector.wait_for(lambda: delivered() >= killed_at + SENT // 5, within=60)
        routed_while_down = delivered() - killed_at
        await own_redis.start()
        await streaming
        await collector.wait_for(lambda: len({r.key for r in collector.records[topic]}) >= SENT,
                                 within=120)  # fmt: skip
        missing = await lookups_missing(redis, ids, within=120)
        assert router.poll() is None, "the router carried on through the outage, unrestarted"
    finally:
        await routers.stop_all()
        await collector.stop()

    keys = Counter(r.key.decode() for r in collector.records[topic])
    lost = [i for i in ids if i not in keys]
    duplicated = sum(n - 1 for n in keys.values())
    fresh = build_validator(tokens, redis)
    try:
        assert (await fresh.authenticate(token)).token_id
    finally:
        await fresh.stop()
    rules_version = (await RulesStore(redis).get_ruleset()).version
    await redis.aclose()
    print(
        f"\nDRILL redis-kill9: sent={SENT} delivered={len(keys)} duplicated={duplicated}"
        f" lost={len(lost)} routed_while_down={routed_while_down}"
        f" lookups_missing={len(missing)}"
    )
    assert not lost
    assert routed_while_down >= SENT // 5, "routing went on for the cached token"
    assert not missing
    assert rules_version == version


FULL_RATE = 50_000


@pytest.mark.drill
@pytest.mark.timeout(600)
async def test_redis_outage_at_full_rate_loses_no_lookup(
    kafka_bootstrap: str, own_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    """Redis down for as long as 50,000 alerts take to route unpaced (the router's full rate),
    then back: every alert delivered during the outage, every lookup there after catch-up
    (50,000 decisions waited in the decisions topic)."""
    redis = own_redis.client()
    tokens = test_settings(own_redis.url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    settings = router_settings(kafka_bootstrap, own_redis.url)
    topic = settings.topics.team_topic("ops")
    collector = Collector(kafka_bootstrap, [topic])
    # The cached token outlives the outage (the default grace is 30 s): the outage lasts as
    # long as the volume takes, and this drill is about the lookups, not the grace.
    routers = RouterProcesses(
        settings,
        tokens,
        tmp_path,
        ALERTYARD_ROUTER_BATCH_MAX_RECORDS="500",
        ALERTYARD_TOKENS_REDIS_DOWN_GRACE_S="600",
    )
    warmup = [uuid.uuid4().hex for _ in range(100)]  # caches the token before the outage
    ids = [uuid.uuid4().hex for _ in range(FULL_RATE)]
    await collector.start()

    def delivered() -> int:
        return len({r.key for r in collector.records[topic]})

    try:
        router = await routers.start("a")
        await send_stream(kafka_bootstrap, settings.topics.alerts, warmup, token=token)
        await collector.wait_for(lambda: delivered() >= len(warmup), within=60)
        own_redis.kill9()
        await send_stream(kafka_bootstrap, settings.topics.alerts, ids, token=token, chunk=1000)
        await collector.wait_for(lambda: delivered() >= len(warmup) + FULL_RATE, within=300)
        routed_while_down = delivered() - len(warmup)  # all of them: Redis is still down
        await own_redis.start()
        missing = await lookups_missing(redis, warmup + ids, within=180)
        assert router.poll() is None, "the router carried on through the outage, unrestarted"
    finally:
        await routers.stop_all()
        await collector.stop()
        await redis.aclose()

    keys = Counter(r.key.decode() for r in collector.records[topic])
    lost = [i for i in ids if i not in keys]
    print(
        f"\nDRILL redis-outage-full-rate: sent={FULL_RATE} delivered={len(set(ids) & set(keys))}"
        f" duplicated={sum(n - 1 for n in keys.values())} lost={len(lost)}"
        f" routed_while_down={routed_while_down} lookups_missing={len(missing)}"
    )
    assert not lost
    assert routed_while_down == FULL_RATE
    assert not missing
