"""``NativeConsumer.commit_in_background`` on a real broker: the commit is handed over at once,
its answer reaches the listener (on the loop) as the fetch thread polls, and the group's
committed offsets are the ones sent."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition
from structlog.testing import capture_logs

from shared.kafka import ensure_topics, make_producer
from shared.kafka_native import (
    CommitAnswers,
    NativeConsumer,
    PartitionKey,
    RebalanceHandler,
    consumer_config,
)

pytestmark = [pytest.mark.kafka]

GUARD_S = 60  # a hang detector only


def _committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[PartitionKey, int]:
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = reader.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        reader.close()
    return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}


async def test_a_background_commit_is_answered_through_the_fetch_thread(
    kafka_bootstrap: str,
) -> None:
    topic = f"t-{uuid.uuid4().hex[:10]}.commits"
    group = f"g-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, [topic], partitions=2)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        for n in range(20):
            await producer.send_and_wait(topic, b"x", partition=n % 2)
    finally:
        await producer.stop()

    config = consumer_config(kafka_bootstrap, group_id=group)
    consumer = NativeConsumer(config, [topic], RebalanceHandler())
    answers: list[CommitAnswers] = []
    answered = asyncio.Event()

    def listen(answer: CommitAnswers) -> None:
        answers.append(answer)
        answered.set()

    consumer.on_commit_answers(listen)
    await consumer.start()
    try:
        seen: dict[PartitionKey, int] = {}
        async with asyncio.timeout(GUARD_S):
            while sum(seen.values()) < 20:
                for key, records in (await consumer.fetch(50, 0.2)).items():
                    seen[key] = seen.get(key, 0) + len(records)
            wanted = {(topic, 0): 7, (topic, 1): 10}
            await consumer.commit_in_background(wanted)
            assert answers == []  # handed over; the answer comes with a later poll
            while not answered.is_set():
                await consumer.fetch(10, 0.05)  # polling serves librdkafka's on_commit
    finally:
        await consumer.close()
    assert answers == [{key: (offset, None) for key, offset in wanted.items()}]
    committed = await asyncio.to_thread(_committed, kafka_bootstrap, group, topic, 2)
    assert committed == wanted


async def test_an_unreadable_commit_answer_is_logged_and_never_raised_into_librdkafka(
    kafka_bootstrap: str,
) -> None:
    config = consumer_config(kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex[:8]}")
    consumer = NativeConsumer(config, [f"t-{uuid.uuid4().hex[:10]}.commits"], RebalanceHandler())
    consumer.on_commit_answers(lambda _answer: None)
    await consumer.start()
    try:
        with capture_logs() as logs:
            # What librdkafka's callback would pass if a partition were unreadable.
            consumer._answered(None, [object()])  # type: ignore[list-item]
    finally:
        await consumer.close()
    assert [entry["event"] for entry in logs] == ["commit_answer_unreadable"]
