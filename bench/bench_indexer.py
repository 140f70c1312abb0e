"""Decision indexer benchmark (#13): ``batch-v2`` records on a topic -> Redis, per decision.

60,000 decisions (120 records of 500 rows, six partitions, ``bench_router``-like alerts) are
pre-produced to a fresh topic, then indexed by :class:`DecisionIndexer` in this process (as
the router's child runs it) into an empty Redis database, until every decision is indexed.
Reported per decision: this process's CPU, Redis's CPU (its ``/proc`` entry, when Redis runs
on this machine) and Redis memory. Baseline, same run: the same decisions written straight
to Redis by ``DecisionStore.write_many`` in the format older routers stored (each value a
:class:`Decision` as JSON), so the Redis CPU and memory of the two value formats sit side by
side.

Environment: ``KAFKA_BOOTSTRAP_SERVERS`` (default 127.0.0.1:9092), database 15 of
``REDIS_URL``'s server (``bench.redis_url``; flushed before and after).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from redis.asyncio import Redis

from bench import redis_url as bench_redis_url
from services.router.decision_batch import DecisionBatch, decode_batch, encode_batch
from services.router.decision_log import FORMAT_HEADER, ROWS_FORMAT, DecisionIndexer
from services.router.decisions import DecisionRecord, DecisionStore, decision_from_stored
from shared.kafka import ensure_topics, make_consumer

__all__ = ["run"]

RECORDS = 120
ROWS = 500
PARTITIONS = 6
RETENTION_S = 7 * 24 * 3600
_TEAMS = ("sre", "db", "web", "net")
_PER_WRITE = 16 * ROWS  # the indexer gathers up to 16 records a write


def _values() -> list[bytes]:
    """The decisions topic's record values: one ``batch-v2`` record per 500 decisions."""
    values = []
    for b in range(RECORDS):
        now = datetime.now(UTC)
        head = [now.isoformat(), now.isoformat(), int(now.timestamp() * 1000)]
        placed = [(f"alertyard.team.{_TEAMS[i % 4]}", i % 6, 100_000 + i) for i in range(ROWS)]
        rows = [
            [
                f"{b:05d}{i:05d}-aaaa-bbbb-cccc-0123456789ab",
                "routed",
                "firing",
                "critical",
                None,
                "Disk usage above 90% on host db-17 for 10m",
                "checkout",
                (_TEAMS[i % 4],),
                (f"r{i % 4}",),
                7,
                False,
                "tok_abc",
                "alertyard.alerts",
                i % PARTITIONS,
                b * ROWS + i,
                [i],
            ]
            for i in range(ROWS)
        ]
        values += encode_batch(DecisionBatch(head, placed, rows))
    return values


class _RedisCpu:
    """Redis's CPU seconds from ``/proc``, when the server is a local process."""

    def __init__(self, pid: int) -> None:
        self._stat = Path(f"/proc/{pid}/stat")

    def seconds(self) -> float | None:
        try:
            fields = self._stat.read_text().rpartition(")")[2].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _memory(redis: Redis) -> int:
    return int((await redis.info("memory"))["used_memory"])


def _spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def _per(amount: float | None, count: int, scale: float = 1e6) -> float | None:
    return None if amount is None else round(amount / count * scale, 2)


async def _indexed(bootstrap: str, redis: Redis, values: list[bytes]) -> dict[str, Any]:
    topic = f"bench-indexer-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [topic], partitions=PARTITIONS, replication_factor=1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for value in values:
        producer.produce(topic, value, headers=[(FORMAT_HEADER, ROWS_FORMAT)])
    producer.flush(60)
    count = RECORDS * ROWS
    cpu = _RedisCpu(int((await redis.info("server"))["process_id"]))
    consumer = make_consumer(bootstrap, topic, group_id=f"{topic}-indexer")
    indexer = DecisionIndexer(consumer, DecisionStore(redis, retention_s=RETENTION_S))
    await indexer.start()
    memory, redis_cpu = await _memory(redis), cpu.seconds()
    started, own = time.perf_counter(), time.process_time()
    task = asyncio.create_task(indexer.run())
    # The indexer exposes a count, not an event; 20 ms of polling against a run of seconds.
    while indexer.indexed < count and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    seconds, own = time.perf_counter() - started, time.process_time() - own
    redis_after = cpu.seconds()
    indexer.stop()
    await task
    await indexer.close()
    return {
        "decisions": count,
        "per_s": round(count / seconds),
        "indexer_cpu_us": _per(own, count),
        "redis_cpu_us": _per(_spent(redis_cpu, redis_after), count),
        "redis_bytes": _per(await _memory(redis) - memory, count, 1),
    }


async def _legacy_values(redis: Redis, values: list[bytes]) -> dict[str, Any]:
    """The same decisions, each stored as a ``Decision``'s JSON (older routers' format)."""
    records = [
        DecisionRecord(
            r.alert_id, r.member, r.scopes, decision_from_stored(r.body).model_dump_json()
        )
        for v in values
        for r in decode_batch(v)
    ]
    cpu = _RedisCpu(int((await redis.info("server"))["process_id"]))
    store = DecisionStore(redis, retention_s=RETENTION_S)
    memory, before = await _memory(redis), cpu.seconds()
    for start in range(0, len(records), _PER_WRITE):  # as large as the indexer's writes
        await store.write_many(records[start : start + _PER_WRITE])
    after = cpu.seconds()
    return {
        "redis_cpu_us": _per(_spent(before, after), len(records)),
        "redis_bytes": _per(await _memory(redis) - memory, len(records), 1),
        "value_bytes": round(sum(len(r.body) for r in records) / len(records)),
    }


async def _run() -> dict[str, Any]:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    redis = Redis.from_url(bench_redis_url())
    values = _values()
    try:
        await redis.flushdb()
        rows = await _indexed(bootstrap, redis, values)
        rows["value_bytes"] = round(
            sum(len(r.body) for v in values for r in decode_batch(v)) / (RECORDS * ROWS)
        )
        await redis.flushdb()
        legacy = await _legacy_values(redis, values)
        await redis.flushdb()
    finally:
        await redis.aclose()
    ratio = None
    if rows["redis_bytes"] and legacy["redis_bytes"]:
        ratio = round(rows["redis_bytes"] / legacy["redis_bytes"], 2)
    return {"indexer_rows": rows, "baseline_legacy_json_values": legacy, "memory_ratio": ratio}


def run() -> dict[str, Any]:
    return asyncio.run(_run())
