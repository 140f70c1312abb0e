"""Drill (#14): no lookup lost when the router is killed -9 during a Redis outage.

With ``ALERTYARD_ROUTER_DECISIONS_VIA_TOPIC`` the decisions are acknowledged by Kafka before the
batch is committed and indexed into Redis from the decisions topic. Redis (stack settings) is
killed -9 mid-stream, then the router is killed -9 while decisions wait for Redis; Redis comes
back and a new router takes over: every alert is delivered and every lookup is there once the
indexer caught up.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest

from services.router.decisions import DecisionStore
from services.rules.engine.model import Ruleset
from services.tokens.testing import test_settings
from tests.integration._processes import free_port, start_service, wait_ready
from tests.integration._redis_server import ThrowawayRedis
from tests.integration.router._harness import (
    Collector,
    router_process_env,
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
    kafka_bootstrap: str, own_redis: ThrowawayRedis, tmp_path: Path
) -> None:
    redis = own_redis.client()
    tokens = test_settings(own_redis.url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    settings = router_settings(kafka_bootstrap, own_redis.url)
    topic = settings.topics.team_topic("ops")
    collector = Collector(kafka_bootstrap, [topic])
    await collector.start()
    procs: list[subprocess.Popen[bytes]] = []

    async def start_router(name: str) -> subprocess.Popen[bytes]:
        port = free_port()
        env = router_process_env(
            settings,
            tokens,
            port=port,
            ALERTYARD_ROUTER_DECISIONS_VIA_TOPIC="true",
            ALERTYARD_TOPIC_DECISIONS=f"{settings.topics.alerts}.decisions",
            ALERTYARD_ROUTER_BATCH_MAX_RECORDS="200",
        )
        proc = start_service("router", env, tmp_path / f"{name}.log")
        procs.append(proc)
        await wait_ready(port, proc)
        return proc

    ids = [uuid.uuid4().hex for _ in range(SENT)]

    def delivered() -> int:
        return len(collector.records[topic])

    async def produce() -> None:
        await send_stream(kafka_bootstrap, settings.topics.alerts, ids, token=token, pause_s=0.02)

    try:
        first = await start_router("a")
        producing = asyncio.create_task(produce())
        await collector.wait_for(lambda: delivered() >= SENT // 4, within=60)
        own_redis.kill9()  # decisions now wait for Redis
        killed_at = delivered()
        await collector.wait_for(lambda: delivered() >= killed_at + SENT // 4, within=60)
        first.send_signal(signal.SIGKILL)  # with decisions not yet in Redis
        first.wait(timeout=10)
        await own_redis.start()
        await start_router("b")
        await producing
        await collector.wait_for(lambda: len({r.key for r in collector.records[topic]}) >= SENT,
                                 within=90)  # fmt: skip
        store = DecisionStore(redis, retention_s=3600)
        missing = list(ids)
        async with asyncio.timeout(90):  # the indexer catches up
            for _ in itertools.count():
                missing = [i for i in missing if await store.get(i) is None]
                if not missing:
                    break
                await asyncio.sleep(0.2)  # polling the indexer's progress
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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
