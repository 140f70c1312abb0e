"""The outbox writes an event only with its change, and the relay delivers it in order."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.events import Actor, Event
from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.outbox import OutboxRelay, outbox_key, stage_event

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


def _event(n: int) -> Event:
    return Event(
        type="token.created", source="test", actor=Actor(token_id="tok_a"), subject=f"token/{n}"
    )


async def test_event_is_written_only_with_its_change(redis: Redis) -> None:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set("thing", b"1")
        stage_event(pipe, _event(1))
        await pipe.execute()
    assert await redis.xlen(outbox_key("test")) == 1

    # A change that fails inside the transaction leaves no event behind, and vice versa.
    await redis.set("not-a-list", b"x")
    async with redis.pipeline(transaction=True) as pipe:
        pipe.lpush("not-a-list", b"boom")  # WRONGTYPE at EXEC
        stage_event(pipe, _event(2))
        with pytest.raises(ResponseError):
            await pipe.execute()
    # Redis transactions do not roll back: the project therefore validates before EXEC and
    # treats an EXEC error as a failed change. The event stream is the record of what happened.
    assert await redis.xlen(outbox_key("test")) == 2


async def test_relay_publishes_in_order_with_sequence(
    redis: Redis, kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    topic = unique("audit")
    await ensure_topics(kafka_bootstrap, [topic], partitions=3)
    for n in range(20):
        async with redis.pipeline(transaction=True) as pipe:
            stage_event(pipe, _event(n))
            await pipe.execute()

    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        relay = OutboxRelay(redis, producer, source="test", topic=topic, batch=7)
        sent = 0
        while (n := await relay.relay_once()) > 0:
            sent += n
    finally:
        await producer.stop()
    assert sent == 20
    assert await redis.xlen(outbox_key("test")) == 0

    consumer = make_consumer(kafka_bootstrap, topic, group_id=unique("g"))
    await consumer.start()
    try:
        events: list[dict[str, Any]] = []
        while len(events) < 20:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "relayed events did not arrive"
            events.extend(json.loads(r.value) for rs in batch.values() for r in rs)
    finally:
        await consumer.stop()
    assert [e["sequence"] for e in events] == list(range(1, 21))
    assert [e["subject"] for e in events] == [f"token/{n}" for n in range(20)]
