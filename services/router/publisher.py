"""Publishing a batch: hand every record to the producer, then gather the acks once.

No per-message round trip: ``send`` only enqueues into the producer's batches; the acks
(``acks=all``) are awaited together. Records whose delivery failed are sent again with
exponential backoff until they are acknowledged; nothing is ever skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from services.router.plan import OutMessage
from services.router.topics import TopicProvisioner
from shared.logging import get_logger
from shared.retries import RetryLater, RetryPolicy

__all__ = ["BatchPublisher", "Pending"]

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


@dataclass(slots=True)
class Pending:
    """Records handed to the producer whose acks have not been gathered yet."""

    results: list[RecordMetadata | None]
    futures: list[tuple[int, asyncio.Future[RecordMetadata]]]
    error: str
    failed: list[int] = field(default_factory=list)


class BatchPublisher:
    def __init__(
        self,
        producer: AIOKafkaProducer,
        topics: TopicProvisioner,
        *,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._producer = producer
        self._topics = topics
        self._ensure_retry = replace(TOPIC_ENSURE_RETRY, wait_max=max_backoff_s)
        self._publish_retry = replace(PUBLISH_RETRY, wait_max=max_backoff_s)
        self.retries = 0

    async def publish(self, messages: Sequence[OutMessage]) -> list[RecordMetadata]:
        """Publish all ``messages``; returns their metadata, in order, once all are acked."""
        return await self.settle(messages, await self.enqueue(messages))

    async def enqueue(self, messages: Sequence[OutMessage]) -> Pending:
        """Hand every message to the producer (no waiting for acks); see :meth:`settle`."""
        results: list[RecordMetadata | None] = [None] * len(messages)
        if not messages:
            return Pending(results, [], "")
        topics = {m.topic for m in messages}
        async for attempt in self._ensure_retry.retrying():
            with attempt:
                try:
                    await self._topics.ensure(topics)
                except Exception as exc:  # broker unreachable: wait, never route around it
                    log.warning("topic_ensure_retry", error=repr(exc))
                    raise
        futures, failed, error = await self._send(messages, range(len(messages)))
        return Pending(results, futures, error, failed)

    async def settle(
        self, messages: Sequence[OutMessage], pending: Pending
    ) -> list[RecordMetadata]:
        """Wait for every ack of ``pending``; failed records are sent again with backoff."""
        results = pending.results
        failed, error = list(pending.failed), pending.error
        failed.extend(await self._gather(pending.futures, results))
        if not failed:
            return [r for r in results if r is not None]
        # The rare path: after a backoff, send what failed again and wait for its acks.
        async for attempt in self._publish_retry.retrying():
            with attempt:
                if attempt.num > 1:
                    failed.sort()
                    futures, failed, error = await self._send(messages, failed)
                    failed.extend(await self._gather(futures, results))
                if failed:
                    self.retries += len(failed)
                    log.warning("publish_retry", failed=len(failed), error=error)
                    raise RetryLater
        return [r for r in results if r is not None]

    async def _send(
        self, messages: Sequence[OutMessage], indexes: Iterable[int]
    ) -> tuple[list[tuple[int, asyncio.Future[RecordMetadata]]], list[int], str]:
        futures: list[tuple[int, asyncio.Future[RecordMetadata]]] = []
        failed: list[int] = []
        error = ""
        send = self._producer.send
        for index in indexes:
            message = messages[index]
            try:
                future = await send(
                    message.topic, value=message.value, key=message.key, headers=message.headers
                )
            except Exception as exc:  # e.g. metadata timeout: retried with the others
                failed.append(index)
                error = repr(exc)
                continue
            futures.append((index, future))
        return futures, failed, error

    @staticmethod
    async def _gather(
        futures: list[tuple[int, asyncio.Future[RecordMetadata]]],
        results: list[RecordMetadata | None],
    ) -> list[int]:
        """Wait for every ack, in send order; returns the indexes whose delivery failed.

        A produce response settles a whole run of futures at once, so walking them in order
        suspends about once per request. (``asyncio.gather`` would add a done callback, hence
        an event-loop iteration, per record.) ``asyncio.wait`` never cancels the producer's
        futures when this task is cancelled.
        """
        failed: list[int] = []
        for index, future in futures:
            if not future.done():
                await asyncio.wait((future,))
            if future.cancelled():
                raise asyncio.CancelledError
            if future.exception() is None:
                results[index] = future.result()
            else:
                failed.append(index)
        return failed
