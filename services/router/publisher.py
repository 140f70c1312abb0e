"""Publishing a batch: hand every record to the producer, then gather the acks once.

No per-message round trip: ``send`` only enqueues into the producer's batches; the acks
(``acks=all``) are awaited together. Records whose delivery failed are sent again with
exponential backoff until they are acknowledged; nothing is ever skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata

from services.router.plan import OutMessage
from services.router.topics import TopicProvisioner
from shared.logging import get_logger

__all__ = ["BatchPublisher"]

log = get_logger(__name__)


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
        self._max_backoff_s = max_backoff_s
        self.retries = 0

    async def publish(self, messages: Sequence[OutMessage]) -> list[RecordMetadata]:
        """Publish all ``messages``; returns their metadata, in order, once all are acked."""
        if not messages:
            return []
        backoff = 0.1
        while True:
            try:
                await self._topics.ensure({m.topic for m in messages})
                break
            except Exception as exc:  # broker unreachable: wait, never route around it
                log.warning("topic_ensure_retry", error=repr(exc), backoff_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
        results: list[RecordMetadata | None] = [None] * len(messages)
        pending = list(range(len(messages)))
        backoff = 0.1
        while pending:
            failed, error = await self._send_round(messages, pending, results)
            if not failed:
                break
            self.retries += len(failed)
            log.warning(
                "publish_retry", failed=len(failed), error=error, backoff_s=round(backoff, 3)
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self._max_backoff_s)
            pending = failed
        return [r for r in results if r is not None]

    async def _send_round(
        self,
        messages: Sequence[OutMessage],
        pending: list[int],
        results: list[RecordMetadata | None],
    ) -> tuple[list[int], str]:
        futures: list[tuple[int, asyncio.Future[RecordMetadata]]] = []
        failed: list[int] = []
        error = ""
        for index in pending:
            message = messages[index]
            try:
                future = await self._producer.send(
                    message.topic, value=message.value, key=message.key, headers=message.headers
                )
            except Exception as exc:  # e.g. metadata timeout: retried with the others
                failed.append(index)
                error = repr(exc)
                continue
            futures.append((index, future))
        outcomes = await asyncio.gather(*(f for _, f in futures), return_exceptions=True)
        for (index, _), outcome in zip(futures, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, asyncio.CancelledError):
                    raise outcome
                failed.append(index)
                error = repr(outcome)
            else:
                results[index] = outcome
        failed.sort()
        return failed, error
