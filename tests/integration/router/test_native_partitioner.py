"""Keyed records from the router's librdkafka producer land on the partitions Java and aiokafka
producers pick (``partitioner=murmur2_random``; librdkafka's default would not)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka.partitioner import DefaultPartitioner

from services.router.partitioner import KeyPartitioner
from shared.kafka import ensure_topics
from shared.kafka_native import DeliveryBatch, NativeProducer, producer_config

pytestmark = [pytest.mark.kafka]

PARTITIONS = 12


async def test_keys_land_where_aiokafka_and_java_put_them(kafka_bootstrap: str) -> None:
    topic = f"t-{uuid.uuid4().hex[:10]}.partitioner"
    await ensure_topics(kafka_bootstrap, [topic], partitions=PARTITIONS)
    producer = NativeProducer(producer_config(kafka_bootstrap))
    keys = [uuid.uuid4().hex.encode() for _ in range(300)] + [b"a", b"dedup-1", b"\xff\x00"]
    delivery = DeliveryBatch(asyncio.get_running_loop(), len(keys))
    try:
        handed, refused, _ = producer.produce_batch(
            [(topic, key, b"{}", []) for key in keys], delivery, range(len(keys))
        )
        delivery.seal(handed)
        await delivery.wait()
    finally:
        await producer.close()
    assert not refused
    assert not delivery.failed
    everyone = list(range(PARTITIONS))
    for key, placed in zip(keys, delivery.placed, strict=True):
        assert placed is not None
        assert placed.partition == DefaultPartitioner()(key, everyone, everyone), key
        assert placed.partition == KeyPartitioner()(key, everyone, everyone), key
