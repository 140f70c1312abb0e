"""Decisions as part of the at-least-once unit: a decisions topic, indexed into Redis.

By default (``ALERTYARD_ROUTER_DECISIONS_VIA_TOPIC``, on unless set to false) the router
publishes a batch's decisions to the decisions topic with the router's own producer, right
after the batch's copies were acknowledged, and commits the batch's offsets only once the
decisions are acknowledged too. It publishes compact ``batch-v2`` rows
(services/router/decision_batch.py); :class:`DecisionIndexer` consumes the topic, builds the
decision bodies from the rows and writes them into Redis (the same idempotent script as the
opt-out in-memory writer), committing only after Redis answered: a router kill -9 or a Redis
outage of any length loses no lookup; lookups lag behind until the indexer caught up. Every
router runs an indexer (consumer group ``<group>-decisions``), by default in a child process
(services/router/indexer.py), so the indexers share the topic's partitions as the routers
share the alerts. The indexer also reads ``batch-v1`` and the per-decision format of older
routers (a rolling upgrade).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaConsumer

from services.router.decision_batch import DecisionBatch, decode_batch, encode_batch
from services.router.decisions import DecisionRecord, DecisionStore, records_from_rows
from services.router.publisher import Producing
from shared.kafka import make_consumer
from shared.kafka_native import DeliveryBatch, Outgoing
from shared.logging import get_logger
from shared.retries import RetryPolicy
from shared.settings import RouterSettings

__all__ = [
    "CHUNK_BYTES",
    "ROWS_FORMAT",
    "DecisionIndexer",
    "DecisionLog",
    "DecisionsNotDeliveredError",
    "records_from_message",
]

log = get_logger(__name__)

# The per-decision format of older routers (key: alert id, value: the body), still read.
MEMBER_HEADER: Final = "alertyard-decision-member"
SCOPES_HEADER: Final = "alertyard-decision-scopes"
"""Scopes joined by newlines (a team name never holds one)."""
FORMAT_HEADER: Final = "alertyard-decision-format"
BATCH_FORMAT: Final = b"batch-v1"
"""The value is a JSON array of ``[alert id, member, scopes, body]``, one per decision (written
by the opt-in :meth:`DecisionLog.send` and older routers)."""
ROWS_FORMAT: Final = b"batch-v2"
"""The value is a batch's compact rows (services/router/decision_batch.py)."""
CHUNK_BYTES: Final = 256 * 1024
"""Decision bytes per record. The bodies are ASCII JSON, which escaping into the array at most
doubles, so a record stays under the brokers' and librdkafka's 1 MB message limit (one decision
is a few KB at most: every text field it holds is length-limited)."""
_BATCH_HEADERS: Final = [(FORMAT_HEADER, BATCH_FORMAT)]
_ROWS_HEADERS: Final = [(FORMAT_HEADER, ROWS_FORMAT)]
_RECORDS_PER_WRITE: Final = 16
_DECISIONS_PER_WRITE: Final = 2_000
"""A Redis write this large is worth making at once; a smaller one waits up to the linger."""
INDEX_WRITE_RETRY: Final = RetryPolicy(
    name="decision index write", on=Exception, wait_initial=0.1, wait_max=5.0
)
"""Until Redis answers: the commit waits for the write, so an outage drops no decision."""


class DecisionLog:
    """The producer side: decision records onto the decisions topic (the router's own
    librdkafka producer, so in exactly-once mode they are part of its transaction)."""

    def __init__(self, producer: Producing, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    def send_batch(self, batch: DecisionBatch) -> DeliveryBatch:
        """Hand a batch's decision rows to the producer (``batch-v2``, one record unless it is
        large; no key: any partition will do, the index does not depend on order); returns
        their pending delivery reports."""
        topic = self._topic
        return self._produce([(topic, None, v, _ROWS_HEADERS) for v in encode_batch(batch)])

    def send(self, records: Sequence[DecisionRecord]) -> DeliveryBatch:
        """Hand finished records to the producer in the ``batch-v1`` format (what routers wrote
        before ``batch-v2``; kept for tools and the upgrade tests)."""
        topic = self._topic
        return self._produce(
            [(topic, None, orjson.dumps(chunk), _BATCH_HEADERS) for chunk in _chunks(records)]
        )

    def _produce(self, messages: list[Outgoing]) -> DeliveryBatch:
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


def _chunks(records: Sequence[DecisionRecord]) -> list[list[tuple[Any, ...]]]:
    """The records as JSON-ready rows, split so that no chunk's bodies pass CHUNK_BYTES."""
    chunks: list[list[tuple[Any, ...]]] = []
    chunk: list[tuple[Any, ...]] = []
    size = 0
    for record in records:
        if chunk and size + len(record.body) > CHUNK_BYTES:
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(tuple(record))  # orjson encodes tuples, not NamedTuple subclasses
        size += len(record.body) + len(record.member) + 64
    if chunk:
        chunks.append(chunk)
    return chunks


def records_from_message(message: Any) -> list[DecisionRecord]:
    """The :class:`DecisionRecord` s a :class:`DecisionLog` published (an aiokafka record):
    ``batch-v2`` rows, ``batch-v1`` records, or one in the per-decision format of older
    routers."""
    headers = dict(message.headers or ())
    form = headers.get(FORMAT_HEADER)
    if form == ROWS_FORMAT:
        return decode_batch(message.value)
    if form == BATCH_FORMAT:
        return records_from_rows(orjson.loads(message.value))
    return [
        DecisionRecord(
            alert_id=message.key.decode(),
            member=headers[MEMBER_HEADER].decode(),
            scopes=tuple(headers[SCOPES_HEADER].decode().split("\n")),
            body=message.value.decode(),
        )
    ]


def _readable(message: Any) -> list[DecisionRecord]:
    """The message's records; none (logged) for one no router wrote, which would otherwise
    stop indexing at its offset for good."""
    try:
        return records_from_message(message)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        log.error(
            "decision_record_unreadable",
            partition=message.partition,
            offset=message.offset,
            error=type(exc).__name__,
        )
        return []


class DecisionIndexer:
    """The consumer side: decisions topic -> Redis, committed only after Redis answered."""

    def __init__(
        self, consumer: AIOKafkaConsumer, store: DecisionStore, *, linger_s: float = 0.0
    ) -> None:
        self._consumer = consumer
        self._store = store
        self._linger_s = linger_s
        self._stopping = asyncio.Event()
        self.indexed = 0

    @classmethod
    def for_router(cls, settings: RouterSettings, store: DecisionStore) -> DecisionIndexer:
        """The indexer that runs next to a router on ``settings`` (its topic and group)."""
        consumer = make_consumer(
            settings.kafka_bootstrap_servers,
            settings.topics.decisions,
            group_id=f"{settings.group_id}-decisions",
        )
        return cls(consumer, store, linger_s=settings.decision_index_linger_ms / 1000)

    async def start(self) -> None:
        """Join the group (the router has created the decisions topic by then)."""
        await self._consumer.start()

    async def close(self) -> None:
        """Leave the group; call after :meth:`run` returned or was cancelled."""
        await self._consumer.stop()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Index until :meth:`stop`; a Redis outage holds the commit, never drops a record."""
        while not self._stopping.is_set():
            records = await self._gather()
            if not records:
                continue
            async for attempt in INDEX_WRITE_RETRY.retrying():
                with attempt:
                    await self._store.write_many(records)
            with contextlib.suppress(Exception):  # a rebalance: the next owner re-indexes
                await self._consumer.commit()
            self.indexed += len(records)

    async def _gather(self) -> list[DecisionRecord]:
        """The decisions of one Redis write: up to ``_RECORDS_PER_WRITE`` records (each holds up
        to a batch of decisions), gathered for up to the linger while the write would be small.
        Nothing is committed before the write, so a crash meanwhile loses nothing."""
        batch = await self._consumer.getmany(timeout_ms=200, max_records=_RECORDS_PER_WRITE)
        messages = [m for ms in batch.values() for m in ms]
        records = [r for m in messages for r in _readable(m)]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._linger_s
        while (
            records
            and len(records) < _DECISIONS_PER_WRITE
            and len(messages) < _RECORDS_PER_WRITE
            and not self._stopping.is_set()
        ):
            left_ms = int((deadline - loop.time()) * 1000)
            if left_ms <= 0:
                break
            more = await self._consumer.getmany(
                timeout_ms=left_ms, max_records=_RECORDS_PER_WRITE - len(messages)
            )
            found = [m for ms in more.values() for m in ms]
            messages += found
            records += [r for m in found for r in _readable(m)]
        return records
