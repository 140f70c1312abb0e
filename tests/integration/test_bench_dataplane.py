"""The data-plane benchmark's harness runs end to end on a tiny workload (#13): the ceiling
loop and a router process each route every pre-produced alert and commit it, and the
router's stage costs come out of its log. No figure is asserted: benchmarks measure."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import Consumer, TopicPartition

from bench.dataplane import bare_confluent
from bench.dataplane.report import summarise
from bench.dataplane.throughput import run_router
from bench.dataplane.workload import TEAMS, forget_decisions, new_topics, preload, prepare
from services.router.decisions import decisions_key
from shared.keyspace import DECISION_SHARDS
from shared.redis import make_redis
from tests._waiting import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

ALERTS = 300


def _copies(bootstrap: str, topics: list[str]) -> int:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    try:
        return sum(
            reader.get_watermark_offsets(TopicPartition(t, p), timeout=10)[1]
            for t in topics
            for p in range(6)
        )
    finally:
        reader.close()


async def test_harness_routes_tiny_workload(kafka_bootstrap: str, redis_url: str) -> None:
    work = await prepare(kafka_bootstrap, redis_url)
    topics = new_topics(6)
    ids = await preload(work, topics, ALERTS)
    assert len(set(ids)) == ALERTS

    seconds = await asyncio.to_thread(bare_confluent.route, kafka_bootstrap, topics, ALERTS)
    router, process = await run_router(work, topics, ALERTS)

    assert seconds > 0
    assert router["seconds"] > 0
    assert router["stages_us"]["batches"] >= 1, process.log.read_text()[-2000:]
    assert process.proc.returncode == 0  # SIGTERM: drained and exited cleanly
    loops = {
        "bare_librdkafka": {"per_s": ALERTS / seconds},
        "router_at_least_once": {"per_s": ALERTS / router["seconds"]},
    }
    # Each alert matches one team: one copy from each loop, nothing lost or doubled here.
    assert _copies(kafka_bootstrap, [topics.team_topic(t) for t in TEAMS]) == 2 * ALERTS
    summary = summarise({"throughput": {"loops": loops}})
    assert summary["router_vs_bare_librdkafka"]["ratio"] is not None
    assert summarise({"throughput": {"error": "KafkaException: ..."}}) == {}

    # The next loop starts on an empty decision store.
    redis = make_redis(redis_url)
    hashes = [decisions_key(shard) for shard in range(DECISION_SHARDS)]
    try:
        await eventually(lambda: redis.exists(*hashes), what="the router's decisions in Redis")
        assert await forget_decisions(redis_url) > 0
        assert await redis.exists(*hashes) == 0
        assert [k async for k in redis.scan_iter(match="alertyard:{decisions.*")] == []
    finally:
        await redis.aclose()
