"""Drill (#14): Redis killed -9 mid-stream and restarted, on the stack's own settings.

Counts sent, delivered, duplicated and lost alerts, and lookups. Routing continues for the
cached token while Redis is down; afterwards the token and the rules are still in Redis (AOF)
and every decision reaches Redis once the writer catches up.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter

import pytest

from services.router.decisions import DecisionStore, DecisionWriter
from services.router.engine import AlertRouter
from services.rules.control.live import LiveRuleset
from services.rules.control.store import RulesStore
from services.rules.engine.model import Ruleset
from services.tokens.testing import test_settings
from shared.tokens.validator import build_validator
from tests.integration._redis_server import ThrowawayRedis
from tests.integration.router._harness import (
    AlertSender,
    Collector,
    alert_body,
    router_settings,
    seed_rules_and_token,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

SENT = 5_000
WAVE = 250
RULESET = Ruleset.model_validate(
    {"rules": [{"name": "all", "owner_team": "ops", "destinations": ["ops"], "fallback": True}]}
)


async def test_redis_kill9_mid_stream_loses_nothing(
    kafka_bootstrap: str, own_redis: ThrowawayRedis
) -> None:
    redis = own_redis.client()
    tokens = test_settings(own_redis.url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    version = (await RulesStore(redis).get_ruleset()).version
    settings = router_settings(kafka_bootstrap, own_redis.url)
    validator = build_validator(tokens, redis)
    live = LiveRuleset(RulesStore(redis), check_interval_s=0.2)
    store = DecisionStore(redis, retention_s=3600)
    writer = DecisionWriter(store, max_buffered=SENT * 2, timeout_s=0.5)
    router = AlertRouter(settings, validator=validator, ruleset=live, decisions=writer)
    topic = settings.topics.team_topic("ops")
    collector = Collector(kafka_bootstrap, [topic])
    ids = [uuid.uuid4().hex for _ in range(SENT)]
    await collector.start()
    await validator.start()
    await live.start()
    await router.start()
    task = asyncio.create_task(router.run())

    def delivered() -> int:
        return len(collector.records[topic])

    async def stream(sender: AlertSender) -> None:
        for start in range(0, SENT, WAVE):
            wave = ids[start : start + WAVE]
            await sender.send_many(((i.encode(), alert_body(id=i)) for i in wave), token=token)

    try:
        async with AlertSender(kafka_bootstrap, settings.topics.alerts) as sender:
            streaming = asyncio.create_task(stream(sender))
            await collector.wait_for(lambda: delivered() >= SENT // 5, within=60)
            own_redis.kill9()  # mid-stream
            killed_at = delivered()
            await collector.wait_for(lambda: delivered() >= killed_at + SENT // 5, within=60)
            routed_while_down = delivered() - killed_at
            await own_redis.start()
            await streaming
        await collector.wait_for(lambda: delivered() >= SENT, within=120)
        missing_lookups = list(ids)
        async with asyncio.timeout(120):  # the writer reconnects with backoff; lookups catch up
            for _ in itertools.count():
                missing_lookups = [i for i in missing_lookups if await store.get(i) is None]
                if not missing_lookups:
                    break
                await asyncio.sleep(0.2)  # polling the writer's progress
    finally:
        await router.stop()
        await task
        await live.stop()
        await validator.stop()
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
        f" lookups_missing={len(missing_lookups)} dropped_decisions={writer.dropped}"
    )
    assert not lost
    assert routed_while_down >= SENT // 5, "routing went on for the cached token"
    assert not missing_lookups
    assert rules_version == version
