"""Drill (#14): two routers in one group, one killed -9 mid-stream, a third added.

Counts sent, delivered, duplicated and lost alerts and missing lookups. Alerts: at least once,
none lost (duplicates only from the killed router's uncommitted batches). Lookups: complete, on
the defaults (decisions through the decisions topic, indexed by every router).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.rules.engine.model import Ruleset
from services.tokens.testing import test_settings
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
SENT = 6_000


async def test_router_killed_and_replaced_mid_stream(
    kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    tokens = test_settings(redis_url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    settings = router_settings(kafka_bootstrap, redis_url)  # 3 partitions: a, b, then c share them
    topic = settings.topics.team_topic("ops")
    collector = Collector(kafka_bootstrap, [topic])
    routers = RouterProcesses(settings, tokens, tmp_path)
    ids = [uuid.uuid4().hex for _ in range(SENT)]
    await collector.start()

    def delivered() -> int:
        return len(collector.records[topic])

    try:
        first = await routers.start("a")
        await routers.start("b")
        producing = asyncio.create_task(
            send_stream(kafka_bootstrap, settings.topics.alerts, ids, token=token, pause_s=0.02)
        )
        await collector.wait_for(lambda: delivered() >= SENT // 4, within=120)
        kill9(first)  # no drain, no commit, no decision flush
        await routers.start("c")
        await producing
        await collector.wait_for(lambda: len({r.key for r in collector.records[topic]}) >= SENT,
                                 within=180)  # fmt: skip
        missing = await lookups_missing(redis, ids, within=90)
    finally:
        await routers.stop_all()
        await collector.stop()

    keys = Counter(r.key.decode() for r in collector.records[topic])
    lost = [i for i in ids if i not in keys]
    duplicated = sum(n - 1 for n in keys.values())
    print(
        f"\nDRILL router-failover: sent={SENT} delivered={len(keys)} duplicated={duplicated}"
        f" lost={len(lost)} lookups_missing={len(missing)}"
    )
    assert not lost
    assert not missing
