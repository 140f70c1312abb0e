"""Router benchmark: throughput against a bare aiokafka loop, and end-to-end latency.

1. Throughput: the same pre-produced alerts (~300 bytes, keyed by dedup key as ``alertyard
   send`` does, 6 partitions, bearer header) are consumed by (a) a bare aiokafka consume ->
   produce -> commit loop (the router's client settings, acks=all, commit after every ack) and
   (b) the router (auth with a cached token, schema, rule evaluation, team topics, decision
   store, commit), each in a fresh consumer group, alternating over two rounds in the same run.
   Each clock runs from partition assignment to the last record's commit.
2. Latency: the router runs in its own process; this process produces a steady 2,000 alerts/s
   and reads the team topic; latency = arrival time - send time carried in the alert.

Environment: ``KAFKA_BOOTSTRAP_SERVERS`` / database 15 of ``REDIS_URL``'s server (flushed).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener

from bench import redis_url as bench_redis_url
from services.router.decisions import DecisionStore, DecisionWriter
from services.router.engine import AlertRouter
from services.router.partitioner import KeyPartitioner
from services.rules.engine.compiled import compile_ruleset
from services.rules.engine.model import Ruleset
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.logging import configure_logging
from shared.redis import make_redis
from shared.runtime import tune_gc
from shared.settings import RouterSettings, TopicSettings
from shared.tokens.validator import build_validator

THROUGHPUT_ALERTS = 40_000
THROUGHPUT_ROUNDS = 2
LATENCY_RATE = 2_000
LATENCY_SECONDS = 10
LATENCY_WARMUP_SECONDS = 2
"""Sent first and left out of the figures: topic metadata and first connections warm up."""
PARTITIONS = 6
TEAMS = ("dba", "sre", "frontend", "payments")

RULESET = Ruleset.model_validate(
    {
        "version": 1,
        "rules": [
            {
                "name": f"to-{team}",
                "owner_team": team,
                "condition_groups": [
                    {
                        "conditions": [
                            {
                                "field": "service",
                                "operator": "is_one_of",
                                "values": [f"{team}-svc", f"{team}-db"],
                            }
                        ]
                    }
                ],
                "destinations": [team],
            }
            for team in TEAMS
        ]
        + [{"name": "rest", "owner_team": "sre", "destinations": ["sre"], "fallback": True}],
    }
)


class _StaticRuleset:
    def __init__(self) -> None:
        self.current = compile_ruleset(RULESET)
        self.loaded = True


def _env() -> tuple[str, str]:
    return (
        os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        bench_redis_url(),
    )


def _alert(n: int, sent_ns: int = 0) -> tuple[bytes, bytes]:
    """Kafka key and value of alert ``n``; keyed by its dedup key, as ``alertyard send`` does."""
    team = TEAMS[n % len(TEAMS)]
    alert_id = f"bench-{n}-{uuid.uuid4().hex[:8]}"
    body = {
        "id": alert_id,
        "source": "bench",
        "summary": f"disk usage above 90% on node-{n % 97}",
        "severity": "warning",
        "service": f"{team}-svc",
        "environment": "prod",
        "labels": {"node": f"node-{n % 97}", "region": "eu-west-1"},
        "payload": {"sent_ns": sent_ns, "n": n},
    }
    return alert_id.encode(), json.dumps(body).encode()


def _topics(tag: str) -> TopicSettings:
    return TopicSettings(
        alerts=f"bench-{tag}.alerts",
        team_prefix=f"bench-{tag}.team.",
        unrouted=f"bench-{tag}.unrouted",
        rejected=f"bench-{tag}.rejected",
        partitions=PARTITIONS,
    )


async def _token(redis_url: str) -> str:
    redis = make_redis(redis_url)
    await redis.flushdb()
    raw, _ = await issue_token(
        redis, test_settings(redis_url), kind="global", permissions=[Permission.alerts_publish]
    )
    await redis.aclose()
    return raw


async def _preload(bootstrap: str, topic: str, token: str, count: int) -> None:
    producer = make_producer(bootstrap, linger_ms=20)
    await producer.start()
    headers = [("authorization", f"Bearer {token}".encode())]
    try:
        for start in range(0, count, 5000):
            futures = []
            for n in range(start, min(start + 5000, count)):
                key, value = _alert(n)
                futures.append(await producer.send(topic, value=value, key=key, headers=headers))
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self) -> None:
        self.at: float | None = None

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned and self.at is None:
            self.at = time.perf_counter()


def _client_options() -> tuple[dict[str, Any], dict[str, Any]]:
    """The aiokafka producer and consumer options the router used before #13 moved it to
    librdkafka: the reference loop keeps them, so its figures continue the earlier ones."""
    settings = RouterSettings()
    producer = {"linger_ms": settings.producer_linger_ms, "partitioner": KeyPartitioner()}
    consumer = {
        "max_poll_records": settings.batch_max_records,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
    }
    return producer, consumer


async def _acks(futures: list[asyncio.Future[Any]]) -> None:
    """Wait for every ack in send order (as the router does: cheaper than ``gather``)."""
    for future in futures:
        if not future.done():
            await asyncio.wait((future,))
        future.result()  # a failed delivery fails the benchmark


async def _forward(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, sink: str, timeout_ms: int
) -> int:
    """One round of the reference: consume a batch, produce every record (same key, value
    and headers), wait for all acks (acks=all), then commit. Returns the records handled."""
    batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=500)
    futures = [
        await producer.send(sink, value=r.value, key=r.key, headers=list(r.headers))
        for records in batch.values()
        for r in records
    ]
    await _acks(futures)
    if not batch:
        return 0
    await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batch.items()})
    return len(futures)


async def _bare_loop(bootstrap: str, source: str, sink: str, count: int) -> float:
    """The reference: a bare aiokafka consume -> produce -> commit loop, one batch at a time."""
    producer_options, consumer_options = _client_options()
    producer = make_producer(bootstrap, **producer_options)
    consumer = make_consumer(
        bootstrap, group_id=f"bench-bare-{uuid.uuid4().hex[:8]}", **consumer_options
    )
    listener = _Assigned()
    consumer.subscribe([source], listener=listener)
    await producer.start()
    await consumer.start()
    done = 0
    try:
        while done < count:
            done += await _forward(consumer, producer, sink, timeout_ms=50)
        end = time.perf_counter()
    finally:
        await consumer.stop()
        await producer.stop()
    assert listener.at is not None
    return end - listener.at


async def _router_run(bootstrap: str, redis_url: str, topics: TopicSettings, count: int) -> float:
    settings = RouterSettings.model_validate(
        {
            "kafka_bootstrap_servers": bootstrap,
            "redis_url": redis_url,
            "group_id": f"bench-router-{uuid.uuid4().hex[:8]}",
            "topics": topics,
            # Created at start-up, as a deployment provisions them; the reference loop's
            # sink topic exists before its clock starts too.
            "provision_teams": list(TEAMS),
        }
    )
    redis = make_redis(redis_url)
    validator = build_validator(test_settings(redis_url), redis)
    await validator.start()
    store = DecisionStore(redis, retention_s=3600)
    router = AlertRouter(
        settings,
        validator=validator,
        ruleset=_StaticRuleset(),
        decisions=DecisionWriter(store, max_buffered=100_000),
    )
    await router.start()
    task = asyncio.create_task(router.run())
    assigned_at: float | None = None
    try:
        while True:
            if assigned_at is None and router.assigned:
                assigned_at = time.perf_counter()
            consumed = router.metrics.registry.get_sample_value("alertyard_router_alerts_in_total")
            if consumed is not None and consumed >= count:
                await router.drain()  # up to the last commit, like the reference loop
                end = time.perf_counter()
                break
            await asyncio.sleep(0.001)
    finally:
        await router.stop()
        await task
        await validator.stop()
        await redis.aclose()
    assert assigned_at is not None
    return end - assigned_at


async def _throughput(bootstrap: str, redis_url: str, token: str) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    topics = _topics(tag)
    sink = f"bench-{tag}.bare-out"
    await ensure_topics(bootstrap, [topics.alerts, sink], partitions=PARTITIONS)
    await _preload(bootstrap, topics.alerts, token, THROUGHPUT_ALERTS)
    # Both loops run like a started service (serve() tunes the collector once started).
    tune_gc()
    # Alternating rounds, each loop in a fresh consumer group over the same records: the
    # machine is shared, so a load swing hits both loops rather than one of them.
    bare_s: list[float] = []
    router_s: list[float] = []
    for _ in range(THROUGHPUT_ROUNDS):
        bare_s.append(await _bare_loop(bootstrap, topics.alerts, sink, THROUGHPUT_ALERTS))
        router_s.append(await _router_run(bootstrap, redis_url, topics, THROUGHPUT_ALERTS))
    bare_rate = THROUGHPUT_ALERTS * THROUGHPUT_ROUNDS / sum(bare_s)
    router_rate = THROUGHPUT_ALERTS * THROUGHPUT_ROUNDS / sum(router_s)
    return {
        "alerts": THROUGHPUT_ALERTS,
        "rounds": THROUGHPUT_ROUNDS,
        "bare_aiokafka_per_s": round(bare_rate),
        "router_per_s": round(router_rate),
        "ratio": round(router_rate / bare_rate, 3),
        "ratio_per_round": [round(b / r, 3) for b, r in zip(bare_s, router_s, strict=True)],
        "ratio_target": 0.7,
    }


def _serve_router(config: str) -> None:
    """Child process: the router on the given topics until stdin closes."""
    spec = json.loads(config)
    configure_logging(os.environ.get("BENCH_ROUTER_LOG_LEVEL", "warning"), "json")

    async def main() -> None:
        topics = TopicSettings.model_validate(spec["topics"])
        if spec["mode"] == "bare":
            await _serve_bare(spec["bootstrap"], topics)
            return
        settings = RouterSettings.model_validate(
            {
                "kafka_bootstrap_servers": spec["bootstrap"],
                "redis_url": spec["redis_url"],
                "group_id": spec["group"],
                "topics": topics,
                "batch_timeout_ms": 5,
                "provision_teams": list(TEAMS),
            }
        )
        redis = make_redis(spec["redis_url"])
        validator = build_validator(test_settings(spec["redis_url"]), redis)
        await validator.start()
        router = AlertRouter(
            settings,
            validator=validator,
            ruleset=_StaticRuleset(),
            decisions=DecisionWriter(DecisionStore(redis, retention_s=3600), max_buffered=100_000),
            producer_options=json.loads(os.environ.get("BENCH_PRODUCER_OPTIONS", "{}")),
            consumer_options=json.loads(os.environ.get("BENCH_CONSUMER_OPTIONS", "{}")),
        )
        await router.start()
        task = asyncio.create_task(router.run())
        while not router.ready:  # noqa: ASYNC110 - readiness is a property, not an event
            await asyncio.sleep(0.05)
        tune_gc()  # as serve() does once started
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await router.stop()
        await task
        await validator.stop()

    asyncio.run(main())


async def _serve_bare(bootstrap: str, topics: TopicSettings) -> None:
    """The latency reference: the bare loop with the router's client settings and batch
    timeout, forwarding to one team topic."""
    producer_options, consumer_options = _client_options()
    producer = make_producer(bootstrap, **producer_options)
    consumer = make_consumer(
        bootstrap, topics.alerts, group_id=f"bench-bare-{uuid.uuid4().hex[:8]}", **consumer_options
    )
    await producer.start()
    await consumer.start()
    closed = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    ready = False
    sink = topics.team_topic(TEAMS[0])
    try:
        while not closed.done():
            await _forward(consumer, producer, sink, timeout_ms=5)
            if not ready and consumer.assignment():
                ready = True
                tune_gc()  # as serve() does once started
                print("ready", flush=True)
    finally:
        await consumer.stop()
        await producer.stop()


async def _latency(
    bootstrap: str, redis_url: str, token: str, mode: str = "router"
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    topics = _topics(tag)
    team_topics = [topics.team_topic(t) for t in TEAMS]
    await ensure_topics(bootstrap, [topics.alerts, *team_topics], partitions=PARTITIONS)
    spec = {
        "bootstrap": bootstrap,
        "redis_url": redis_url,
        "group": f"bench-lat-{tag}",
        "topics": topics.model_dump(),
        "mode": mode,
    }
    child = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [sys.executable, "-m", "bench.bench_router", "--serve-router", json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None if os.environ.get("BENCH_ROUTER_LOG_LEVEL") else subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.get_running_loop().run_in_executor(None, child.stdout.readline)
        if line.strip() != "ready":
            raise RuntimeError(f"router child did not start: {line!r}")
        return await _measure_latency(bootstrap, topics.alerts, team_topics, token)
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()


async def _measure_latency(
    bootstrap: str, source: str, team_topics: list[str], token: str
) -> dict[str, Any]:
    consumer = make_consumer(
        bootstrap, *team_topics, group_id=None, auto_offset_reset="latest", fetch_max_wait_ms=10
    )
    await consumer.start()
    await asyncio.sleep(1.0)  # let the reader's partition positions settle before sending
    latencies: list[float] = []
    sent_at: list[int] = []
    warmup = LATENCY_RATE * LATENCY_WARMUP_SECONDS
    total = LATENCY_RATE * LATENCY_SECONDS + warmup

    total_seen = [0]

    async def read() -> None:
        while len(latencies) + total_seen[0] < total:
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time_ns()
            for records in batch.values():
                for r in records:
                    payload = json.loads(r.value)["payload"]
                    if payload["n"] < warmup:
                        total_seen[0] += 1
                        continue
                    sent = payload["sent_ns"]
                    latencies.append((now - sent) / 1e6)
                    sent_at.append(sent)

    reader = asyncio.create_task(read())
    producer = make_producer(bootstrap, linger_ms=0)
    await producer.start()
    headers = [("authorization", f"Bearer {token}".encode())]
    tick = 0.005
    per_tick = int(LATENCY_RATE * tick)
    start = time.perf_counter()
    pending = []  # acks are gathered at the end: the producer never waits per message
    for n in range(0, total, per_tick):
        target = start + (n // per_tick) * tick
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        for i in range(n, n + per_tick):
            key, value = _alert(i, time.time_ns())
            pending.append(await producer.send(source, value=value, key=key, headers=headers))
    await asyncio.gather(*pending)
    sent_rate = total / (time.perf_counter() - start)
    try:
        await asyncio.wait_for(reader, timeout=30)
    finally:
        await producer.stop()
        await consumer.stop()
    if os.environ.get("BENCH_DEBUG"):
        first = min(sent_at)
        by_second: dict[int, list[float]] = {}
        for t, lat in zip(sent_at, latencies, strict=True):
            by_second.setdefault((t - first) // 1_000_000_000, []).append(lat)
        for second, values in sorted(by_second.items()):
            values.sort()
            print(second, len(values), values[len(values) // 2], values[-1], file=sys.stderr)
    ordered = sorted(latencies)
    return {
        "rate_target_per_s": LATENCY_RATE,
        "rate_sent_per_s": round(sent_rate),
        "alerts": len(ordered),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 2),
        "max_ms": round(ordered[-1], 2),
        "p99_target_ms": 25,
    }


async def _run() -> dict[str, Any]:
    bootstrap, redis_url = _env()
    token = await _token(redis_url)
    throughput = await _throughput(bootstrap, redis_url, token)
    latency = await _latency(bootstrap, redis_url, token)
    reference = await _latency(bootstrap, redis_url, token, mode="bare")
    latency["bare_aiokafka_loop_same_run"] = {
        k: reference[k] for k in ("p50_ms", "p99_ms", "max_ms", "rate_sent_per_s")
    }
    return {"throughput": throughput, "latency": latency}


def run() -> dict[str, Any]:
    """Entry point for ``python -m bench`` (see bench/__main__.py)."""
    configure_logging("warning", "json")
    return asyncio.run(_run())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-router":
        _serve_router(sys.argv[2])
    else:
        print(json.dumps(run(), indent=2))
