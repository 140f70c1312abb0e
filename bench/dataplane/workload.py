"""The one workload every loop of the data-plane benchmark sees: topics, token, rules, alerts.

Alerts are ``bench_router``'s (~300 bytes, keyed by dedup key, bearer header) so the figures
continue the earlier ones; they are produced once and read by every loop in a fresh group.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

from confluent_kafka import Producer

from bench import redis_url as bench_redis_url
from bench.bench_router import RULESET, TEAMS, _alert
from services.rules.control.store import RulesStore
from services.tokens.service import TokenService
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.kafka import ensure_topics
from shared.keyspace import DECISION_SHARDS, decision_tag
from shared.redis import make_redis
from shared.settings import TokensSettings, TopicSettings

__all__ = [
    "TEAMS",
    "Workload",
    "aof_rewrites",
    "env",
    "forget_decisions",
    "librdkafka_producer",
    "new_topics",
    "preload",
    "prepare",
]


def env() -> tuple[str, str]:
    return (
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        bench_redis_url(),
    )


@dataclass
class Workload:
    bootstrap: str
    redis_url: str
    tokens: TokensSettings
    publish_token: str
    read_token: str
    ids: list[str] = field(default_factory=list)
    """Alert ids of the pre-produced records, in production order."""


def new_topics(partitions: int) -> TopicSettings:
    """Fresh topic names (one tag per use, so runs never see each other's records)."""
    tag = uuid.uuid4().hex[:8]
    return TopicSettings(
        alerts=f"dp-{tag}.alerts",
        team_prefix=f"dp-{tag}.team.",
        unrouted=f"dp-{tag}.unrouted",
        rejected=f"dp-{tag}.rejected",
        decisions=f"dp-{tag}.decisions",
        audit=f"dp-{tag}.audit",
        partitions=partitions,
    )


async def prepare(bootstrap: str, redis_url: str) -> Workload:
    """Flush the bench Redis db; seed teams, the ruleset and two tokens (publish, read)."""
    redis = make_redis(redis_url)
    tokens = test_settings(redis_url)
    try:
        await redis.flushdb()
        service = TokenService(redis, tokens)
        for team in TEAMS:
            await service.create_team(name=team, actor=None)
        await RulesStore(redis).apply(RULESET, principal=None)
        publish, _ = await issue_token(
            redis, tokens, kind="global", permissions=[Permission.alerts_publish]
        )
        read, _ = await issue_token(
            redis, tokens, kind="global", permissions=[Permission.alerts_read]
        )
    finally:
        await redis.aclose()
    return Workload(bootstrap, redis_url, tokens, publish, read)


def librdkafka_producer(bootstrap: str, **overrides: object) -> Producer:
    """acks=all, idempotent, Java's murmur2 partitioner (keys land where the router's would)."""
    config: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": "murmur2_random",
        "linger.ms": 5,
    }
    config.update(overrides)
    return Producer(config)


async def preload(work: Workload, topics: TopicSettings, count: int) -> list[str]:
    """Create the topics and produce ``count`` alerts to the alerts topic; returns their ids."""
    team_topics = [topics.team_topic(t) for t in TEAMS]
    await ensure_topics(
        work.bootstrap,
        [
            topics.alerts,
            *team_topics,
            topics.unrouted,
            topics.rejected,
            topics.decisions,
            topics.audit,
        ],
        partitions=topics.partitions,
    )
    producer = librdkafka_producer(work.bootstrap)
    headers: list[tuple[str, str | bytes | None]] = [
        ("authorization", f"Bearer {work.publish_token}".encode())
    ]
    failed: list[object] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(err)

    ids = []
    for n in range(count):
        key, value = _alert(n)
        ids.append(key.decode())
        while True:
            try:
                producer.produce(topics.alerts, value, key, headers=headers, on_delivery=delivered)
                break
            except BufferError:  # local queue full: let deliveries drain it
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    if failed:
        raise RuntimeError(f"preload failed: {failed[0]}")
    return ids


async def forget_decisions(redis_url: str) -> int:
    """Delete every decision earlier loops stored in the bench's database; returns the keys
    deleted. Each loop then starts on an empty decision store: without this a later loop pays
    for the earlier loops' Redis memory, since every AOF rewrite (a fork, then a core busy for
    seconds) copies the whole dataset, and the full run stores ~1.5 GB of decisions."""
    tags = tuple(decision_tag(shard).encode() for shard in range(DECISION_SHARDS))
    redis = make_redis(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(count=1000) if key.startswith(tags)]
        if keys:
            await redis.unlink(*keys)  # freed by Redis's background thread
        return len(keys)
    finally:
        await redis.aclose()


async def aof_rewrites(redis_url: str) -> int:
    """How many AOF rewrites the Redis server ran since it started (``INFO persistence``)."""
    redis = make_redis(redis_url)
    try:
        return int((await redis.info("persistence")).get("aof_rewrites", 0))
    finally:
        await redis.aclose()
