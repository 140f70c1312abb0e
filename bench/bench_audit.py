"""Audit benchmark: durable append and verify, each next to a same-run baseline.

1. Durable append (log only): 100,000 events appended in batches of 1,000 (chain, canonical JSON,
   write, fsync per batch). Baseline: the same record bytes written and fsynced in the same
   batches with no chaining or serialisation (the disk's share of the cost).
2. Durable append from Kafka: 30,000 events pre-produced to a fresh topic (3 partitions), then
   consumed 3 times (fresh group and log each) by the service's own FastStream subscriber and
   ``AuditConsumer`` (decode, validate, encode, chain, write, fsync, commit), with the collector
   tuned as ``alertyard serve audit`` tunes it. Clock: first append to last commit; the median
   run is the figure, and each run's process CPU per event is reported too (steadier than the
   rate on a shared machine). Baseline: the same records through a bare aiokafka getmany ->
   commit loop.
3. Verify: the log from (1) re-verified (chain + checkpoint signatures). Baselines: reading the
   segments alone, and reading + SHA-256 of every line alone (no checks).

Environment: ``KAFKA_BOOTSTRAP_SERVERS`` (default 127.0.0.1:9092) for (2).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker

from services.audit.consumer import AuditConsumer
from services.audit.log import AuditLog
from services.audit.quarantine import Quarantine
from services.audit.records import GENESIS_HASH, encode_record
from services.audit.segments import list_segments
from services.audit.signing import load_or_create_signing_key
from services.audit.subscriber import build_audit_router
from services.audit.verify import verify_log
from shared.events import Actor, Event
from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.logging import configure_logging
from shared.runtime import tune_gc
from shared.settings.audit import AuditSettings

APPEND_EVENTS = 100_000
KAFKA_EVENTS = 30_000
KAFKA_RUNS = 3
BATCH = 1_000
TARGET_APPEND = 20_000
TARGET_VERIFY = 200_000


def _events(count: int, source: str = "tokens") -> list[Event]:
    return [
        Event(
            type="token.created",
            source=source,
            sequence=n,
            actor=Actor(user_id=f"user-{n % 50}", token_id=f"tok-{n % 7}"),
            subject=f"token/{uuid.uuid4().hex[:16]}",
            data={"kind": "team", "name": f"ci-{n}", "team": "payments", "permissions": ["a"]},
        )
        for n in range(1, count + 1)
    ]


def _bench_append(directory: Path, events: list[Event]) -> float:
    key = load_or_create_signing_key(directory, None)
    audit_log = AuditLog.open(directory, signing_key=key)
    started = time.perf_counter()
    for start in range(0, len(events), BATCH):
        audit_log.append(events[start : start + BATCH])
    elapsed = time.perf_counter() - started
    audit_log.close()
    return len(events) / elapsed


def _baseline_fsync_writes(directory: Path, events: list[Event]) -> float:
    """The same bytes, pre-encoded, written and fsynced in the same batches."""
    prev = GENESIS_HASH
    lines = []
    for seq, event in enumerate(events, start=1):
        line, prev = encode_record(seq, event.model_dump(mode="json"), prev)
        lines.append(line)
    batches = [b"".join(lines[i : i + BATCH]) for i in range(0, len(lines), BATCH)]
    fd = os.open(directory / "raw.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    started = time.perf_counter()
    try:
        for data in batches:
            os.write(fd, data)
            os.fsync(fd)
    finally:
        os.close(fd)
    return len(events) / (time.perf_counter() - started)


def _baselines_read_and_hash(directory: Path) -> tuple[float, float]:
    paths = [p for _, p in list_segments(directory)]
    started = time.perf_counter()
    count = sum(len(p.read_bytes().split(b"\n")) - 1 for p in paths)
    read_rate = count / (time.perf_counter() - started)
    started = time.perf_counter()
    for path in paths:
        for line in path.read_bytes().split(b"\n"):
            hashlib.sha256(line).hexdigest()
    return read_rate, count / (time.perf_counter() - started)


@dataclass(frozen=True)
class KafkaRun:
    rate: float
    """Events per second, first append to last commit."""
    cpu_us_per_event: float
    """Process CPU (all threads) per event over the same window: steadier than the rate on a
    shared machine, where other processes take turns on the cores."""
    bare_rate: float


async def _bench_kafka(directory: Path, bootstrap: str, runs: int) -> list[KafkaRun]:
    """Produce the events once, then consume them ``runs`` times (fresh groups and logs)."""
    topic = f"bench-audit-{uuid.uuid4().hex[:10]}"
    await ensure_topics(bootstrap, [topic], partitions=3)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for source in ("tokens", "rules", "users"):
            futures = [
                await producer.send(topic, key=e.source.encode(), value=e.to_bytes())
                for e in _events(KAFKA_EVENTS // 3, source)
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    previous = tune_gc()  # as `alertyard serve audit` does once started
    try:
        return [
            await _consume_once(directory / f"run-{n}", bootstrap, topic, f"{topic}-{n}")
            for n in range(runs)
        ]
    finally:  # the other benchmarks share this process
        gc.unfreeze()
        gc.set_threshold(*previous)


async def _consume_once(directory: Path, bootstrap: str, topic: str, group: str) -> KafkaRun:
    total = KAFKA_EVENTS // 3 * 3
    fetch_wait = AuditSettings().fetch_max_wait_ms
    bare = make_consumer(
        bootstrap,
        topic,
        group_id=group + "-bare",
        max_poll_records=BATCH,
        fetch_max_wait_ms=fetch_wait,
    )
    await bare.start()
    try:
        bare_rate = await _bare_consume_commit(bare, total)
    finally:
        await bare.stop()
    key = load_or_create_signing_key(directory, None)
    audit_log = AuditLog.open(directory, signing_key=key)
    consumer = AuditConsumer(audit_log, Quarantine(directory))
    subscription = build_audit_router(  # the service's own FastStream subscriber
        consumer, topic=topic, group_id=group, max_records=BATCH, fetch_max_wait_ms=fetch_wait
    )
    broker = KafkaBroker(bootstrap, log_level=logging.DEBUG)
    broker.include_router(subscription.router)
    await broker.start()
    try:
        await consumer.wait_until(lambda _: audit_log.head_seq > 0)  # first records appended
        started, cpu_started = time.perf_counter(), time.process_time()
        first = audit_log.head_seq
        await consumer.wait_until(lambda c: c.records_committed >= total)  # the last commit
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        await consumer.drain()
    finally:
        await broker.stop()
        audit_log.close()
    assert audit_log.head_seq == total
    return KafkaRun(
        rate=(total - first) / elapsed,
        cpu_us_per_event=cpu / (total - first) * 1e6,
        bare_rate=bare_rate,
    )


async def _bare_consume_commit(consumer: AIOKafkaConsumer, total: int) -> float:
    """Baseline: the same records through getmany -> commit with no work in between."""
    seen, started = 0, 0.0
    while seen < total:
        batches = await consumer.getmany(timeout_ms=500, max_records=BATCH)
        if not batches:
            continue
        if not started:
            started = time.perf_counter()
        seen += sum(len(records) for records in batches.values())
        await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in batches.items() if rs})
    return total / (time.perf_counter() - started)


def run() -> dict[str, Any]:
    configure_logging("warning", "json")
    root = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    try:
        events = _events(APPEND_EVENTS)
        (root / "log").mkdir()
        (root / "raw").mkdir()
        append_rate = _bench_append(root / "log", events)
        raw_rate = _baseline_fsync_writes(root / "raw", events)
        del events  # 100,000 live models would slow the collector in the Kafka runs below

        key = load_or_create_signing_key(root / "log", None)
        verify_runs = []
        for _ in range(3):
            report = verify_log(root / "log", key.public_key())
            assert report.ok, report.problems
            verify_runs.append(report.records / report.seconds)
        read_rate, hash_rate = _baselines_read_and_hash(root / "log")

        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        kafka_runs = asyncio.run(_bench_kafka(root / "kafka", bootstrap, KAFKA_RUNS))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    verify_rate = sorted(verify_runs)[1]
    kafka = sorted(kafka_runs, key=lambda r: r.rate)[len(kafka_runs) // 2]
    return {
        "append_events_per_s": round(append_rate),
        "append_target_events_per_s": TARGET_APPEND,
        "append_baseline_raw_fsync_writes_per_s": round(raw_rate),
        "append_vs_raw_fsync": round(append_rate / raw_rate, 3),
        "append_from_kafka_events_per_s_median": round(kafka.rate),
        "append_from_kafka_events_per_s_runs": [round(r.rate) for r in kafka_runs],
        "append_from_kafka_cpu_us_per_event_runs": [
            round(r.cpu_us_per_event, 1) for r in kafka_runs
        ],
        "append_from_kafka_baseline_bare_consume_commit_per_s": round(kafka.bare_rate),
        "kafka_events": KAFKA_EVENTS,
        "verify_records_per_s_median_of_3": round(verify_rate),
        "verify_target_records_per_s": TARGET_VERIFY,
        "verify_baseline_read_only_per_s": round(read_rate),
        "verify_baseline_read_and_sha256_per_s": round(hash_rate),
        "verify_vs_sha256_alone": round(verify_rate / hash_rate, 3),
        "records": APPEND_EVENTS,
        "batch": BATCH,
        "meets_targets": min(append_rate, kafka.rate) >= TARGET_APPEND
        and verify_rate >= TARGET_VERIFY,
    }
