"""The stack is real: a Kafka broker that stores and serves messages, a Redis that answers."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from shared.kafka import ensure_topics, make_consumer, make_producer

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


async def test_topic_created_with_admin_client(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = unique("smoke-admin")
    await ensure_topics(kafka_bootstrap, [topic], partitions=3)
    await ensure_topics(kafka_bootstrap, [topic], partitions=3)  # idempotent

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert described[0]["topic"] == topic
    assert len(described[0]["partitions"]) == 3


async def test_produce_and_consume_with_headers(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = unique("smoke-roundtrip")
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        for i in range(5):
            await producer.send_and_wait(
                topic,
                value=f"m{i}".encode(),
                key=b"k",
                headers=[("authorization", b"Bearer x"), ("n", str(i).encode())],
            )
    finally:
        await producer.stop()

    consumer = make_consumer(kafka_bootstrap, topic, group_id=unique("smoke-group"))
    await consumer.start()
    try:
        got: list[tuple[bytes | None, list[tuple[str, bytes]]]] = []
        while len(got) < 5:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "no messages arrived within 10 s"
            for records in batch.values():
                got.extend((r.value, list(r.headers)) for r in records)
        await consumer.commit()
    finally:
        await consumer.stop()
    assert [value for value, _ in got] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert got[3][1] == [("authorization", b"Bearer x"), ("n", b"3")]


async def test_redis_round_trip(redis: Redis) -> None:
    await redis.set("smoke:key", b"value", ex=60)
    assert await redis.get("smoke:key") == b"value"
    info = await redis.info("server")
    assert int(str(info["redis_version"]).split(".")[0]) >= 6
