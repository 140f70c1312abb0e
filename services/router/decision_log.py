"""Decisions as part of the at-least-once unit: a decisions topic, indexed into Redis.

With ``ALERTYARD_ROUTER_DECISIONS_VIA_TOPIC`` on, the router publishes every decision record to
the decisions topic (key: the alert id) with the router's own producer, right after the batch's
copies were acknowledged, and commits the batch's offsets only once the decisions are
acknowledged too. :class:`DecisionIndexer` consumes that topic and writes the records into
Redis (the same idempotent script as the in-memory writer), committing only after Redis
answered: a router kill -9 or a Redis outage of any length loses no lookup; lookups lag behind
until the indexer caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Final

import stamina
from aiokafka import AIOKafkaConsumer

from services.router.decisions import DecisionRecord, DecisionStore
from services.router.publisher import Producing
from shared.kafka_native import DeliveryBatch
from shared.logging import get_logger

__all__ = ["DecisionIndexer", "DecisionLog", "DecisionsNotDeliveredError", "record_from_message"]

log = get_logger(__name__)

MEMBER_HEADER: Final = "alertyard-decision-member"
SCOPES_HEADER: Final = "alertyard-decision-scopes"
"""Scopes joined by newlines (a team name never holds one)."""


class DecisionLog:
    """The producer side: decision records onto the decisions topic (the router's own
    librdkafka producer, so in exactly-once mode they are part of its transaction)."""

    def __init__(self, producer: Producing, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    def send(self, records: Sequence[DecisionRecord]) -> DeliveryBatch:
        """Hand every record to the producer; returns their pending delivery reports."""
        topic = self._topic
        messages = [
            (
                topic,
                record.alert_id.encode(),
                record.body.encode(),
                [
                    (MEMBER_HEADER, record.member.encode()),
                    (SCOPES_HEADER, "\n".join(record.scopes).encode()),
                ],
            )
            for record in records
        ]
        delivery = DeliveryBatch(asyncio.get_running_loop(), len(messages))
        handed, refused, error = self._producer.produce_batch(
            messages, delivery, range(len(messages))
        )
        delivery.seal(handed)
        if refused:  # the local queue is full: the router replays the batch
            raise DecisionsNotDeliveredError(f"{len(refused)} decisions refused: {error}")
        return delivery

    @staticmethod
    async def settle(deliveries: Sequence[DeliveryBatch]) -> None:
        """Wait for every ack; a failure raises, and the router replays the batch."""
        for delivery in deliveries:
            await delivery.wait()
            if delivery.failed:
                raise DecisionsNotDeliveredError(
                    f"{len(delivery.failed)} decisions not delivered: {delivery.error}"
                )


class DecisionsNotDeliveredError(Exception):
    """Decision records Kafka did not acknowledge: the batch is replayed, never committed."""


def record_from_message(message: Any) -> DecisionRecord:
    """The :class:`DecisionRecord` a :class:`DecisionLog` published (an aiokafka record)."""
    headers = dict(message.headers or ())
    return DecisionRecord(
        alert_id=message.key.decode(),
        member=headers[MEMBER_HEADER].decode(),
        scopes=tuple(headers[SCOPES_HEADER].decode().split("\n")),
        body=message.value.decode(),
    )


class DecisionIndexer:
    """The consumer side: decisions topic -> Redis, committed only after Redis answered."""

    def __init__(self, consumer: AIOKafkaConsumer, store: DecisionStore) -> None:
        self._consumer = consumer
        self._store = store
        self._stopping = asyncio.Event()
        self.indexed = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Index until :meth:`stop`; a Redis outage holds the commit, never drops a record."""
        while not self._stopping.is_set():
            batch = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            records = [record_from_message(m) for messages in batch.values() for m in messages]
            if not records:
                continue
            # Named policy: exponential backoff with jitter up to 5 s, until Redis answers.
            async for attempt in stamina.retry_context(
                on=Exception, attempts=None, timeout=None, wait_initial=0.1, wait_max=5.0
            ):
                with attempt:
                    await self._store.write_many(records)
            with contextlib.suppress(Exception):  # a rebalance: the next owner re-indexes
                await self._consumer.commit()
            self.indexed += len(records)
