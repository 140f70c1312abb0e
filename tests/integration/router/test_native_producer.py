"""``NativeProducer.produce_batch`` calls librdkafka positionally: every record lands with its
own key, value and headers, and each delivery report fills the slot of its own record."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from shared.kafka import ensure_topics, make_consumer
from shared.kafka_native import DeliveryBatch, NativeProducer, Outgoing, producer_config
from tests._waiting import eventually

pytestmark = [pytest.mark.kafka]


async def test_records_land_as_handed_and_reports_fill_their_own_slots(
    kafka_bootstrap: str,
) -> None:
    topics = [f"t-{uuid.uuid4().hex[:10]}.native-{n}" for n in range(2)]
    await ensure_topics(kafka_bootstrap, topics, partitions=3)
    records: list[Outgoing] = [
        (
            topics[n % 2],
            f"key-{n % 5}".encode() if n % 7 else None,
            f"value-{n}".encode(),
            [("x-n", str(n).encode()), ("x-team", b"dba")] if n % 3 else [],
        )
        for n in range(60)
    ]
    slots = list(range(100, 160))  # slots of a retry need not start at 0
    producer = NativeProducer(producer_config(kafka_bootstrap))
    delivery = DeliveryBatch(asyncio.get_running_loop(), 160)
    try:
        handed, refused, _ = producer.produce_batch(records, delivery, slots)
        delivery.seal(handed)
        await delivery.wait()
    finally:
        await producer.close()
    assert (handed, refused, delivery.failed) == (60, [], [])
    consumer = make_consumer(kafka_bootstrap, *topics, group_id=f"g-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    seen: dict[tuple[str, int, int], tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = {}

    async def read_all() -> bool:
        for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
            for r in batch:
                seen[(tp.topic, tp.partition, r.offset)] = (r.key, r.value, list(r.headers))
        return len(seen) >= len(records)

    try:
        await eventually(read_all, what="every produced record read back", every=0)
    finally:
        await consumer.stop()
    for slot, (topic, key, value, headers) in zip(slots, records, strict=True):
        placed = delivery.placed[slot]
        assert placed is not None
        assert placed.topic == topic
        assert seen[placed] == (key, value, headers)
    assert delivery.placed[:100] == [None] * 100
