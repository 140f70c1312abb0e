"""(b) bench_router's bare aiokafka loop, for continuity with the earlier figures: consume a
batch, produce every record to one sink topic, await the acks, commit. Its client options are
the aiokafka router's as they were before #13 (the router's own options are librdkafka's now).
"""

from __future__ import annotations

import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.bench_router import _Assigned, _forward
from services.router.partitioner import KeyPartitioner
from shared.kafka import make_consumer, make_producer

__all__ = ["route"]


def _clients(bootstrap: str) -> tuple[AIOKafkaProducer, AIOKafkaConsumer]:
    producer = make_producer(bootstrap, linger_ms=0, partitioner=KeyPartitioner())
    consumer = make_consumer(
        bootstrap,
        group_id=f"dp-bare-aio-{uuid.uuid4().hex[:8]}",
        max_poll_records=500,
        fetch_max_wait_ms=20,
    )
    return producer, consumer


async def route(bootstrap: str, source: str, sink: str, count: int) -> float:
    """Seconds from assignment to the commit after the last record."""
    producer, consumer = _clients(bootstrap)
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
