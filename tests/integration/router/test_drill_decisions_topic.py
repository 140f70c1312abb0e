"""Drill (#14): no lookup lost when the router is killed -9 during a Redis outage.

On the defaults the decisions are acknowledged by Kafka before the batch is committed and
indexed into Redis from the decisions topic. Redis (stack settings, but ``appendfsync always``:
with ``everysec`` a slow disk lets Redis acknowledge writes it has not yet written, for up to
2 s, and a kill -9 then loses them: a run on a loaded machine once missed 100 lookups, 2 s at
this drill's rate; docs/operations.md, recovery point) is killed -9 mid-stream,
then the router is killed -9 while decisions wait for Redis; Redis comes back and a new router
takes over: every alert is delivered and every lookup is there once the indexer caught up.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest

from services.rules.engine.model import Ruleset
from services.tokens.testing import test_settings
from tests.integration._redis_server import ThrowawayRedis
from tests.integration.router._harness import (
    Collector,
    RouterProcesses,
    kill9,
    lookups_missing,
    router_settings,
    seed_rules_and_token,
    send_stream,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

RULESET = Ruleset.model_validate(
    {"rules": [{"name": "all", "owner_team": "ops", "destinations": ["ops"], "fallback": True}]}
)
SENT = 4_000


async def test_router_kill9_during_redis_outage_loses_no_lookup(
    kafka_bootstrap: str, own_redis_fsync_always: ThrowawayRedis, tmp_path: Path
) -> None:
    own_redis = own_redis_fsync_always
    redis = own_redis.client()
    tokens = test_settings(own_redis.url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    settings = router_settings(kafka_bootstrap, own_redis.url)
    topic = settings.topics.team_topic("ops")
    collector = Collector(kafka_bootstrap, [topic])
    routers = RouterProcesses(settings, tokens, tmp_path)
    ids = [uuid.uuid4().hex for _ in range(SENT)]
    await collector.start()

    def delivered() -> int:
        return len(collector.records[topic])

    try:
        first = await routers.start("a")
        producing = asyncio.create_task(
            send_stream(kafka_bootstrap, settings.topics.alerts, ids, token=token, pause_s=0.02)
        )
        await collector.wait_for(lambda: delivered() >= SENT // 4, within=60)
        own_redis.kill9()  # decisions now wait for Redis
        killed_at = delivered()
        await collector.wait_for(lambda: delivered() >= killed_at + SENT // 4, within=60)
        kill9(first)  # with decisions not yet in Redis
        await own_redis.start()
        await routers.start("b")
        await producing
        await collector.wait_for(lambda: len({r.key for r in collector.records[topic]}) >= SENT,
                                 within=90)  # fmt: skip
        missing = await lookups_missing(redis, ids, within=90)
    finally:
        await routers.stop_all()
        await collector.stop()
        await redis.aclose()

    keys = Counter(r.key.decode() for r in collector.records[topic])
    lost = [i for i in ids if i not in keys]
    print(
        f"\nDRILL decisions-topic: sent={SENT} delivered={len(keys)}"
        f" duplicated={sum(n - 1 for n in keys.values())} lost={len(lost)}"
        f" lookups_missing={len(missing)} routed_while_redis_down={SENT // 4}+"
    )
    assert not lost
    assert not missing
