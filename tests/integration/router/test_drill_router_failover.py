"""Drill (#14): two routers in one group, one killed -9 mid-stream, a third added.

Counts sent, delivered, duplicated and lost alerts and missing lookups. Alerts: at least once,
none lost (duplicates only from the killed router's uncommitted batches). Lookups: complete, with
the decisions topic on (``ALERTYARD_ROUTER_DECISIONS_VIA_TOPIC``); with the in-memory writer a
killed router's waiting decisions would be lost (test_drill_decisions_topic.py).
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
from redis.asyncio import Redis

from services.router.decisions import DecisionStore
from services.rules.engine.model import Ruleset
from services.tokens.testing import test_settings
from tests.integration._processes import free_port, start_service, wait_ready
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
SENT = 6_000


async def test_router_killed_and_replaced_mid_stream(
    kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    tokens = test_settings(redis_url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    settings = router_settings(kafka_bootstrap, redis_url)  # 3 partitions: a, b, then c share them
    topic = settings.topics.team_topic("ops")
    collector = Collector(kafka_bootstrap, [topic])
    await collector.start()
    procs: list[tuple[subprocess.Popen[bytes], int]] = []

    async def start_router(name: str) -> subprocess.Popen[bytes]:
        port = free_port()
        env = router_process_env(
            settings,
            tokens,
            port=port,
            ALERTYARD_ROUTER_BATCH_MAX_RECORDS="200",
            ALERTYARD_ROUTER_DECISIONS_VIA_TOPIC="true",
            ALERTYARD_TOPIC_DECISIONS=f"{settings.topics.alerts}.decisions",
        )
        proc = start_service("router", env, tmp_path / f"{name}.log")
        await wait_ready(port, proc)
        procs.append((proc, port))
        return proc

    ids = [uuid.uuid4().hex for _ in range(SENT)]

    def delivered() -> int:
        return len(collector.records[topic])

    async def produce() -> None:
        await send_stream(kafka_bootstrap, settings.topics.alerts, ids, token=token, pause_s=0.02)

    try:
        first = await start_router("a")
        await start_router("b")
        producing = asyncio.create_task(produce())
        await collector.wait_for(lambda: delivered() >= SENT // 4, within=120)
        first.send_signal(signal.SIGKILL)  # no drain, no commit, no decision flush
        first.wait(timeout=10)
        await start_router("c")
        await producing
        await collector.wait_for(lambda: len({r.key for r in collector.records[topic]}) >= SENT,
                                 within=180)  # fmt: skip
        store = DecisionStore(redis, retention_s=3600)
        missing = list(ids)
        async with asyncio.timeout(90):  # the indexers catch up
            for _ in itertools.count():
                missing = [i for i in missing if await store.get(i) is None]
                if not missing:
                    break
                await asyncio.sleep(0.2)  # polling the indexers' progress
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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
