"""Publishing a batch: hand every record to librdkafka, then wait for its delivery reports.

No per-message round trip and no flush per batch: ``produce`` only enqueues; the delivery
reports (``acks=all``) of a batch are served on the loop and counted there, waking the batch's
waiter once (:class:`~shared.kafka_native.DeliveryBatch`). Records whose delivery failed (or
that the local queue refused) are produced again with exponential backoff until they are
acknowledged; nothing is ever skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final, Protocol

from services.router.plan import OutMessage
from services.router.topics import TopicProvisioner
from shared.kafka_native import Delivered, DeliveryBatch, Outgoing
from shared.logging import get_logger
from shared.retries import RetryLater, RetryPolicy

__all__ = ["BatchPublisher", "DeliveryFailedError", "Pending", "Producing"]

log = get_logger(__name__)

TOPIC_ENSURE_RETRY: Final = RetryPolicy(
    name="creating the team topics a batch needs",
    on=Exception,  # broker unreachable or busy: wait, never route around it
    wait_initial=0.1,
    wait_max=5.0,  # the router's publish_retry_max_backoff_s replaces it
)
PUBLISH_RETRY: Final = RetryPolicy(
    name="records the brokers did not acknowledge",
    on=RetryLater,
    wait_initial=0.1,
    wait_max=5.0,  # the router's publish_retry_max_backoff_s replaces it
)


class Producing(Protocol):
    """What the publisher needs of :class:`~shared.kafka_native.NativeProducer`."""

    def produce_batch(
        self,
        messages: Iterable[Outgoing],
        delivery: DeliveryBatch,
        indexes: Iterable[int],
    ) -> tuple[int, list[int], str]: ...


@dataclass(slots=True)
class Pending:
    """Records handed to the producer whose delivery reports have not been gathered yet."""

    delivery: DeliveryBatch
    refused: list[int]
    error: str


class BatchPublisher:
    def __init__(
        self,
        producer: Producing,
        topics: TopicProvisioner,
        *,
        max_backoff_s: float = 5.0,
        retry_failed: bool = True,
    ) -> None:
        self._producer = producer
        self._topics = topics
        self._ensure_retry = replace(TOPIC_ENSURE_RETRY, wait_max=max_backoff_s)
        self._publish_retry = replace(PUBLISH_RETRY, wait_max=max_backoff_s)
        self._retry_failed = retry_failed
        """Off in exactly-once mode: a failed record fails the transaction, which is replayed."""
        self.retries = 0

    async def publish(self, messages: Sequence[OutMessage]) -> list[Delivered]:
        """Publish all ``messages``; returns where each landed, in order, once all are acked."""
        return await self.settle(messages, await self.enqueue(messages))

    async def enqueue(self, messages: Sequence[OutMessage]) -> Pending:
        """Hand every message to the producer (no waiting for acks); see :meth:`settle`."""
        if messages:
            await self._ensure_topics({m.topic for m in messages})
        return self._send(messages, range(len(messages)))

    async def _ensure_topics(self, topics: set[str]) -> None:
        if all(self._topics.is_known(t) for t in topics):
            return
        async for attempt in self._ensure_retry.retrying():
            with attempt:
                try:
                    await self._topics.ensure(topics)
                except Exception as exc:  # broker unreachable: wait, never route around it
                    log.warning("topic_ensure_retry", error=repr(exc))
                    raise

    def _send(self, messages: Sequence[OutMessage], indexes: Sequence[int]) -> Pending:
        delivery = DeliveryBatch(asyncio.get_running_loop(), len(messages))
        chosen = messages if len(indexes) == len(messages) else [messages[i] for i in indexes]
        handed, refused, error = self._producer.produce_batch(chosen, delivery, indexes)
        delivery.seal(handed)
        return Pending(delivery, refused, error)

    async def settle(self, messages: Sequence[OutMessage], pending: Pending) -> list[Delivered]:
        """Wait for every delivery report of ``pending``; failed records are produced again
        with backoff (or, with retries off, raise so the caller replays the batch)."""
        await pending.delivery.wait()
        placed = pending.delivery.placed
        failed = sorted([*pending.refused, *pending.delivery.failed])
        error = pending.delivery.error or pending.error
        if failed and not self._retry_failed:
            raise DeliveryFailedError(f"{len(failed)} records not delivered: {error}")
        if failed:  # the rare path: after a backoff, produce what failed again
            async for attempt in self._publish_retry.retrying():
                with attempt:
                    if attempt.num > 1:
                        retry = self._send(messages, failed)
                        await retry.delivery.wait()
                        for index in failed:
                            if retry.delivery.placed[index] is not None:
                                placed[index] = retry.delivery.placed[index]
                        failed = sorted([*retry.refused, *retry.delivery.failed])
                        error = retry.delivery.error or retry.error
                    if failed:
                        self.retries += len(failed)
                        log.warning("publish_retry", failed=len(failed), error=error)
                        raise RetryLater
        return [p for p in placed if p is not None]


class DeliveryFailedError(Exception):
    """Some records of a transactional batch were not delivered: abort and replay."""
