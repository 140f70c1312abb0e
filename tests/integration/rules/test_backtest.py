"""Backtest against the real broker: exact counts, time and offset bounds, skipped records,
and the router's consumer group left exactly as it was."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from services.rules.backtest import (
    UNROUTED,
    BacktestRange,
    BacktestReport,
    InvalidBacktestRangeError,
    PartitionRange,
    TeamShift,
    run_backtest,
)
from services.rules.engine.model import Ruleset
from shared.kafka import ensure_topics, make_consumer, make_producer
from tests.integration.rules._fixtures import simple_rule, two_team_ruleset
from tests.unit.rules._build import ruleset

pytestmark = pytest.mark.kafka

# The baseline sends billing to payments, indexer to search, the rest to platform (fallback).
# The candidate also sends indexer alerts to platform, and crawler alerts to search.
CANDIDATE = ruleset(
    simple_rule("payments-billing", "payments", "billing"),
    simple_rule("platform-indexer", "platform", "indexer"),
    simple_rule("search-crawler", "search", "crawler"),
    {"name": "fallback", "owner_team": "platform", "destinations": ["platform"], "fallback": True},
)


def _alert(n: int, service: str) -> bytes:
    body = {"id": f"a{n}", "source": "test", "summary": f"alert {n}", "service": service}
    return json.dumps(body).encode()


async def _produce(
    bootstrap: str, topic: str, rows: list[tuple[int, bytes | None, int | None]]
) -> None:
    """Publish ``(partition, value, timestamp_ms)`` rows in order."""
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for partition, value, timestamp_ms in rows:
            await producer.send(
                topic, value, key=b"k", partition=partition, timestamp_ms=timestamp_ms
            )
        await producer.flush()
    finally:
        await producer.stop()


async def _topic(bootstrap: str, unique: Callable[[str], str]) -> str:
    topic = unique("backtest")
    await ensure_topics(bootstrap, [topic], partitions=3)
    return topic


async def _run(
    bootstrap: str, window: BacktestRange, candidate: Ruleset = CANDIDATE, **extra: Any
) -> BacktestReport:
    return await run_backtest(
        bootstrap=bootstrap,
        window=window,
        baseline=two_team_ruleset(),
        candidate=candidate,
        **extra,
    )


async def test_counts_and_moved_list(kafka_bootstrap: str, unique: Callable[[str], str]) -> None:
    topic = await _topic(kafka_bootstrap, unique)
    services = ["billing", "indexer", "crawler", "web", "indexer", "billing"]
    # Two alerts per partition, partition by partition, so offsets are known.
    await _produce(
        kafka_bootstrap, topic, [(n // 2, _alert(n, s), None) for n, s in enumerate(services)]
    )
    progress: list[tuple[int, int]] = []

    report = await _run(
        kafka_bootstrap, BacktestRange(topic), on_progress=lambda r, e: progress.append((r, e))
    )

    assert report.complete
    assert report.partitions == tuple(PartitionRange(partition=p, start=0, end=2) for p in range(3))
    assert (report.read, report.skipped, report.evaluated) == (6, 0, 6)
    assert (report.moved, report.unchanged) == (3, 3)
    assert report.rules_changed == 0
    assert report.teams == (
        TeamShift(team="platform", gained=2, lost=1),
        TeamShift(team="search", gained=1, lost=2),
    )
    moved = sorted(report.moved_alerts, key=lambda m: m.id or "")
    assert [(m.id, m.partition, m.offset) for m in moved] == [
        ("a1", 0, 1),
        ("a2", 1, 0),
        ("a4", 2, 0),
    ]
    assert [(m.before_teams, m.after_teams) for m in moved] == [
        (("search",), ("platform",)),
        (("platform",), ("search",)),
        (("search",), ("platform",)),
    ]
    assert [(m.before_rules, m.after_rules) for m in moved] == [
        (("search-index",), ("platform-indexer",)),
        (("fallback",), ("search-crawler",)),
        (("search-index",), ("platform-indexer",)),
    ]
    assert progress[0] == (0, 6)
    assert progress[-1] == (6, 6)


async def test_time_bounded_range(kafka_bootstrap: str, unique: Callable[[str], str]) -> None:
    topic = await _topic(kafka_bootstrap, unique)
    now = int(time.time() * 1000)
    hour = 3_600_000
    ages = (3 * hour, hour, 0)  # per partition: alerts three hours ago, an hour ago and now
    rows: list[tuple[int, bytes | None, int | None]] = [
        (p, _alert(p * 3 + n, "indexer"), now - age) for p in range(3) for n, age in enumerate(ages)
    ]
    await _produce(kafka_bootstrap, topic, rows)

    since = datetime.fromtimestamp((now - 2 * hour) / 1000, UTC)  # after the oldest
    until = datetime.fromtimestamp((now - hour // 2) / 1000, UTC)  # before the newest
    middle = await _run(kafka_bootstrap, BacktestRange(topic, since=since, until=until))
    assert (middle.read, middle.moved) == (3, 3)
    assert middle.partitions == tuple(PartitionRange(partition=p, start=1, end=2) for p in range(3))
    assert sorted(m.id or "" for m in middle.moved_alerts) == ["a1", "a4", "a7"]

    recent = await _run(kafka_bootstrap, BacktestRange(topic, since=since))
    assert recent.read == 6
    future = datetime.fromtimestamp((now + hour) / 1000, UTC)
    assert (await _run(kafka_bootstrap, BacktestRange(topic, since=future))).read == 0


async def test_offsets_and_max(kafka_bootstrap: str, unique: Callable[[str], str]) -> None:
    topic = await _topic(kafka_bootstrap, unique)
    await _produce(
        kafka_bootstrap,
        topic,
        [(p, _alert(p * 10 + n, "indexer"), None) for p in range(3) for n in range(10)],
    )
    ranged = await _run(kafka_bootstrap, BacktestRange(topic, from_offset=2, to_offset=5))
    assert ranged.complete
    assert (ranged.read, ranged.moved) == (9, 9)
    assert {(m.offset) for m in ranged.moved_alerts} == {2, 3, 4}

    bounded = await _run(kafka_bootstrap, BacktestRange(topic, max_records=7), moved_limit=4)
    assert not bounded.complete
    assert (bounded.read, bounded.moved, len(bounded.moved_alerts)) == (7, 7, 4)
    assert bounded.teams == (
        TeamShift(team="platform", gained=7, lost=0),
        TeamShift(team="search", gained=0, lost=7),
    )


async def test_unparsable_records_are_skipped(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = await _topic(kafka_bootstrap, unique)
    rows: list[tuple[int, bytes | None, int | None]] = [
        (0, b"not json", None),
        (0, b'{"service": "web"}', None),  # no source or summary
        (1, b"\xff\xfe\xfd", None),
        (1, None, None),
        (2, _alert(1, "crawler"), None),
        (2, _alert(2, "nothing-matches-web"), None),
    ]
    await _produce(kafka_bootstrap, topic, rows)
    empty_candidate = ruleset()
    report = await _run(kafka_bootstrap, BacktestRange(topic), candidate=empty_candidate)
    assert (report.read, report.skipped, report.evaluated, report.moved) == (6, 4, 2, 2)
    assert report.skipped_reasons == {
        "empty": 1,
        "invalid_json": 1,
        "invalid_utf8": 1,
        "schema_violation": 1,
    }
    assert report.teams == (
        TeamShift(team=UNROUTED, gained=2, lost=0),
        TeamShift(team="platform", gained=0, lost=2),
    )


async def test_router_group_is_untouched(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = await _topic(kafka_bootstrap, unique)
    group = unique("router-group")
    rows: list[tuple[int, bytes | None, int | None]] = [
        (p, _alert(p, "indexer"), None) for p in range(3)
    ]
    await _produce(kafka_bootstrap, topic, rows * 2)
    # The "router" has committed offset 1 in every partition.
    router = make_consumer(kafka_bootstrap, group_id=group)
    await router.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        router.assign(tps)
        await router.commit({tp: OffsetAndMetadata(1, "") for tp in tps})
    finally:
        await router.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        before = await admin.list_consumer_group_offsets(group)
        groups_before = {g[0] for g in await admin.list_consumer_groups()}

        report = await _run(kafka_bootstrap, BacktestRange(topic))

        assert report.read == 6
        assert await admin.list_consumer_group_offsets(group) == before
        assert {tp: meta.offset for tp, meta in before.items()} == dict.fromkeys(tps, 1)
        # No other group (the backtest would have made one) holds offsets of this topic.
        new_groups = {g[0] for g in await admin.list_consumer_groups()} - groups_before
        for other in new_groups - {group}:
            offsets = await admin.list_consumer_group_offsets(other)
            assert not any(tp.topic == topic for tp in offsets)
    finally:
        await admin.close()


async def test_unknown_topic_is_refused(kafka_bootstrap: str, unique: Callable[[str], str]) -> None:
    with pytest.raises(InvalidBacktestRangeError, match="no topic"):
        await _run(kafka_bootstrap, BacktestRange(unique("missing")))
