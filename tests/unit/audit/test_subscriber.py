"""The audit subscriber's handler on FastStream's ``TestKafkaBroker`` (no broker); the same
behaviour on a real broker is in ``tests/integration/audit/test_consumer.py``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.audit.consumer import AuditConsumer, Commit
from services.audit.log import AuditLog
from services.audit.quarantine import Quarantine
from services.audit.subscriber import build_audit_router
from tests.unit.audit._helpers import event, open_log

TOPIC = "audit.events"


@dataclass
class Harness:
    audit_log: AuditLog
    consumer: AuditConsumer
    broker: KafkaBroker
    clock: list[float]
    """The log's monotonic clock; tests move ``clock[0]``."""
    commits: list[tuple[dict[TopicPartition, int], int]] = field(default_factory=list)
    """Each commit's offsets and the head seq on disk when it was made."""

    async def publish(self, *values: bytes) -> None:
        """One polled batch: TestKafkaBroker hands it to the handler before returning."""
        await self.broker.publish_batch(*values, topic=TOPIC)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    now = [0.0]
    audit_log, _ = open_log(tmp_path, checkpoint_every_s=30.0, clock=lambda: now[0])
    consumer = AuditConsumer(audit_log, Quarantine(tmp_path))
    commits: list[tuple[dict[TopicPartition, int], int]] = []

    def commit_for(_: Any) -> Commit:
        async def commit(offsets: dict[TopicPartition, int]) -> None:
            commits.append((dict(offsets), audit_log.head_seq))

        return commit

    subscription = build_audit_router(consumer, topic=TOPIC, group_id="g", commit_for=commit_for)
    broker = KafkaBroker()
    broker.include_router(subscription.router)
    async with TestKafkaBroker(broker) as test_broker:
        harness = Harness(audit_log, consumer, test_broker, now, commits)
        try:
            yield harness
        finally:
            await consumer.drain()
            audit_log.close()


def _records(directory: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for path in sorted(directory.glob("segment-*.jsonl"))
        for line in path.read_bytes().splitlines()
    ]


async def test_a_batch_is_appended_then_committed(harness: Harness, tmp_path: Path) -> None:
    await harness.publish(*(event(n).to_bytes() for n in range(1, 6)))
    await harness.consumer.drain()
    assert [r["event"]["id"] for r in _records(tmp_path)] == [
        f"evt-tokens-{n}" for n in range(1, 6)
    ]
    ((offsets, head_at_commit),) = harness.commits
    assert head_at_commit == 5  # committed only once all five were on disk
    assert list(offsets) == [TopicPartition(TOPIC, 0)]
    assert harness.consumer.records_committed == 5


async def test_bad_records_are_quarantined_with_their_bytes(
    harness: Harness, tmp_path: Path
) -> None:
    # One bad record: TestKafkaBroker numbers every record offset 0, and the quarantine keeps
    # one entry per offset (the real-broker twin quarantines several).
    garbage = b"\x00\xffnot json"
    await harness.publish(event(1).to_bytes(), garbage, event(2).to_bytes())
    await harness.consumer.drain()
    text = (tmp_path / "quarantine.jsonl").read_text()
    (entry,) = [json.loads(line) for line in text.splitlines()]
    assert entry["reason"] == "not_utf8"
    assert entry["value_sha256"] == hashlib.sha256(garbage).hexdigest()
    assert entry["value_bytes"] == len(garbage)
    assert harness.audit_log.head_seq == 2
    assert harness.consumer.records_committed == 3  # the bad one is committed too: it is kept


async def test_a_redelivered_batch_is_skipped(harness: Harness) -> None:
    batch = [event(n).to_bytes() for n in range(1, 4)]
    await harness.publish(*batch)
    await harness.publish(*batch, event(4).to_bytes())
    await harness.consumer.drain()
    assert harness.audit_log.head_seq == 4
    assert harness.consumer.records_committed == 7


async def test_a_failed_write_commits_nothing_and_stops_taking_batches(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("services.audit.log.os.fsync", disk_full)
    await harness.publish(event(1).to_bytes())
    await harness.consumer.wait_until(lambda c: c.failed.is_set())
    monkeypatch.undo()
    await harness.publish(event(2).to_bytes())  # refused: the log takes no more writes
    with pytest.raises(Exception, match="writing the log failed"):
        await harness.consumer.drain()
    assert harness.commits == []
    assert harness.consumer.error is not None


async def test_drain_stops_the_intake(harness: Harness) -> None:
    await harness.publish(event(1).to_bytes())
    await harness.consumer.drain()
    await harness.publish(event(2).to_bytes())  # after drain: left for the next start
    assert harness.audit_log.head_seq == 1
    assert len(harness.commits) == 1


async def test_an_idle_tick_signs_the_head_once_due(harness: Harness) -> None:
    clock = harness.clock
    await harness.publish(event(1).to_bytes())
    await harness.consumer.wait_until(lambda c: c.batches == 1)
    assert not await harness.consumer.tick()
    clock[0] += 30
    assert await harness.consumer.tick()
    assert harness.audit_log.checkpoint_seq == 1
    assert not await harness.consumer.tick()  # nothing new to sign
