"""The audit consumer on a real broker: once each, in order, durable before commit."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from services.audit.consumer import AuditConsumer, Commit
from services.audit.quarantine import Quarantine
from services.audit.query import AuditQuery, query_log
from services.audit.segments import complete_lines, list_segments
from services.audit.verify import verify_log
from shared.events import Actor, Event
from shared.kafka import make_consumer
from tests.integration.audit.conftest import Pipeline

pytestmark = [pytest.mark.kafka]


def _events(source: str, count: int, *, start: int = 1) -> list[Event]:
    return [
        Event(
            type="token.created",
            source=source,
            sequence=n,
            actor=Actor(user_id="u-admin", token_id="tok-admin"),
            subject=f"token/{source}-{n}",
        )
        for n in range(start, start + count)
    ]


async def test_events_are_logged_once_each_in_source_order(pipeline: Pipeline) -> None:
    tokens, rules = _events("tokens", 120), _events("rules", 80)
    await pipeline.publish_events([*tokens[:60], *rules[:40], *tokens[60:], *rules[40:]])
    audit_log = pipeline.open_log()
    try:
        await pipeline.consume_until(audit_log, lambda _: audit_log.head_seq >= 200)
        page = query_log(pipeline.log_dir, AuditQuery(), limit=1000)
        by_source: dict[str, list[int]] = defaultdict(list)
        for record in page.records:
            by_source[record.event.source].append(record.event.sequence)
        assert by_source == {"tokens": list(range(1, 121)), "rules": list(range(1, 81))}
        assert [r.seq for r in page.records] == list(range(1, 201))
        assert audit_log.gaps.snapshot()[0].missing_count == 0
    finally:
        audit_log.close()
    report = verify_log(pipeline.log_dir, audit_log.public_key)
    assert report.ok, report.problems
    assert report.unsigned_tail == 0


async def test_offsets_are_committed_after_the_append(pipeline: Pipeline) -> None:
    await pipeline.publish_events(_events("tokens", 30))
    audit_log = pipeline.open_log()
    try:
        await pipeline.consume_until(audit_log, lambda _: audit_log.head_seq >= 30)
    finally:
        audit_log.close()
    probe = make_consumer(pipeline.bootstrap, group_id=pipeline.group)
    await probe.start()
    try:
        parts = [TopicPartition(pipeline.topic, p) for p in range(3)]
        ends = await probe.end_offsets(parts)
        committed = {tp: await probe.committed(tp) or 0 for tp in parts}
    finally:
        await probe.stop()
    assert committed == ends


async def test_redelivery_is_deduplicated_across_restarts(pipeline: Pipeline) -> None:
    first = _events("tokens", 25)
    await pipeline.publish_events(first)
    audit_log = pipeline.open_log()
    try:
        await pipeline.consume_until(audit_log, lambda _: audit_log.head_seq >= 25)
    finally:
        audit_log.close()

    # The relay publishes some events again (at least once), then new ones arrive; a fresh
    # consumer group re-reads the whole topic from the start into the reopened log.
    await pipeline.publish_events([*first[5:15], *_events("tokens", 5, start=26)])
    audit_log = pipeline.open_log()
    try:
        consumer = await pipeline.consume_until(
            audit_log,
            lambda c: audit_log.head_seq >= 30 and c.batches > 0,
            group=pipeline.group + "-replay",
        )
        assert consumer.batches > 0
        assert audit_log.head_seq == 30
    finally:
        audit_log.close()
    page = query_log(pipeline.log_dir, AuditQuery(), limit=1000)
    assert [r.event.sequence for r in page.records] == list(range(1, 31))
    assert len({r.event.id for r in page.records}) == 30


async def test_malformed_events_are_quarantined_and_the_consumer_goes_on(
    pipeline: Pipeline,
) -> None:
    token = "ayu_" + "Ab1" * 16
    good = _events("tokens", 4)
    bad_shape = json.loads(good[0].to_bytes()) | {"id": "x", "type": "Not A Type"}
    await pipeline.publish(
        [
            (b"tokens", good[0].to_bytes()),
            (b"tokens", b"\x00\xffgarbage"),
            (b"tokens", json.dumps(bad_shape).encode()),
            (b"tokens", good[1].to_bytes()),
            (b"tokens", json.dumps({"leak": token}).encode()),
            (b"tokens", good[2].to_bytes()),
            (b"tokens", good[3].to_bytes()),
        ]
    )
    audit_log = pipeline.open_log()
    try:
        await pipeline.consume_until(audit_log, lambda _: audit_log.head_seq >= 4)
    finally:
        audit_log.close()
    quarantine = (pipeline.log_dir / "quarantine.jsonl").read_text()
    reasons = [json.loads(line)["reason"] for line in quarantine.splitlines()]
    assert reasons == ["not_utf8", "invalid_event", "contains_secret"]
    assert token not in quarantine
    page = query_log(pipeline.log_dir, AuditQuery(), limit=100)
    assert [r.event.id for r in page.records] == [e.id for e in good]
    for path in sorted(pipeline.log_dir.glob("segment-*")):
        assert token not in path.read_text()
    sample = REGISTRY.get_sample_value(
        "alertyard_audit_quarantined_total", {"reason": "contains_secret"}
    )
    assert sample is not None
    assert sample >= 1


async def test_sequence_gaps_are_reported(pipeline: Pipeline) -> None:
    events = _events("gappy", 10)
    await pipeline.publish_events([*events[:3], *events[6:]])  # 4, 5, 6 were lost upstream
    audit_log = pipeline.open_log()
    try:
        await pipeline.consume_until(audit_log, lambda _: audit_log.head_seq >= 7)
        (state,) = audit_log.gaps.snapshot()
        assert (state.source, state.missing, state.missing_count) == ("gappy", [(4, 6)], 3)
    finally:
        audit_log.close()
    assert REGISTRY.get_sample_value("alertyard_audit_missing_events", {"source": "gappy"}) == 3
    gaps = REGISTRY.get_sample_value("alertyard_audit_sequence_gaps_total", {"source": "gappy"})
    assert gaps == 1


async def test_each_commit_covers_only_records_already_on_disk(pipeline: Pipeline) -> None:
    """The subscriber overlaps commits with the next batches' writes; every commit must still
    cover only records already fsynced, and a slow commit never holds the log back."""
    await pipeline.publish_events([*_events("tokens", 150), *_events("rules", 150)])
    audit_log = pipeline.open_log()
    high: dict[TopicPartition, int] = {}
    seen_at_commit: list[tuple[int, int]] = []
    overlapped: list[bool] = []
    consumer = AuditConsumer(audit_log, Quarantine(pipeline.log_dir))

    def commit_for(kafka: Any) -> Commit:
        async def checked_commit(offsets: dict[TopicPartition, int]) -> None:
            # On a fresh topic of good events, the committed offsets summed over partitions
            # count the records the group will never see again: all must be on disk already.
            high.update(offsets)
            on_disk = sum(
                len(complete_lines(path.read_bytes()))
                for _, path in list_segments(pipeline.log_dir)
            )
            seen_at_commit.append((sum(high.values()), on_disk))
            # A slow broker, driven by events: this commit returns only once two more batches
            # are durable (or everything is), so those batches queue up behind it.
            batches = consumer.batches
            await consumer.wait_until(
                lambda c: c.batches >= batches + 2 or audit_log.head_seq >= 300
            )
            overlapped.append(consumer.batches > batches)
            await kafka.commit(offsets)

        return checked_commit

    try:
        await pipeline.consume_until(
            audit_log,
            lambda c: c.records_committed >= 300,
            consumer=consumer,
            commit_for=commit_for,
            max_records=20,
        )
    finally:
        audit_log.close()
    probe = make_consumer(pipeline.bootstrap, group_id=pipeline.group)
    await probe.start()
    try:
        parts = [TopicPartition(pipeline.topic, p) for p in range(3)]
        ends = await probe.end_offsets(parts)
        committed = {tp: await probe.committed(tp) or 0 for tp in parts}
    finally:
        await probe.stop()
    assert consumer.records_committed == 300
    assert committed == ends
    # The batches made durable while a commit was in flight (at most 20 records each) share
    # the next commit.
    assert consumer.batches >= 15
    assert 2 <= len(seen_at_commit) < consumer.batches
    assert all(count <= on_disk for count, on_disk in seen_at_commit), seen_at_commit
    assert seen_at_commit[-1][0] == 300
    assert any(overlapped)
