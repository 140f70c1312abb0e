"""Producing a request's alerts: every record acked by Kafka (``acks=all``), or 503.

Each record carries the caller's token in the ``authorization`` header, so the router stays
the one place that authenticates and routes. A request whose acks do not all arrive within
``timeout_s`` is answered 503 (Alertmanager retries 5xx): records the producer still delivers
afterwards reappear on the retry with the same alert ids, which consumers dedupe on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.ingest import metrics
from shared.alert import Alert
from shared.errors import UnavailableError
from shared.headers import AUTHORIZATION
from shared.logging import get_logger

__all__ = ["AlertPublisher"]

log = get_logger(__name__)


class AlertPublisher:
    def __init__(self, producer: AIOKafkaProducer, topic: str, *, timeout_s: float) -> None:
        self.producer = producer
        self.topic = topic
        self._timeout_s = timeout_s
        self.kafka_ok = True
        """False since the last produce failed, until one succeeds (shown by ``/readyz``)."""

    async def publish(self, records: Sequence[tuple[Alert, bytes]], token: str) -> None:
        """Produce ``(alert, value)`` pairs keyed by dedup key; return once all are acked."""
        headers = [(AUTHORIZATION, f"Bearer {token}".encode())]
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._send_all(records, headers), timeout=self._timeout_s)
        except (KafkaError, TimeoutError) as exc:
            self.kafka_ok = False
            log.warning("produce_failed", records=len(records), error=type(exc).__name__)
            raise UnavailableError("Kafka did not acknowledge the alerts; retry later") from None
        self.kafka_ok = True
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)

    async def _send_all(
        self, records: Sequence[tuple[Alert, bytes]], headers: list[tuple[str, bytes]]
    ) -> None:
        send = self.producer.send
        futures = [
            await send(self.topic, value=value, key=alert.kafka_key(), headers=headers)
            for alert, value in records
        ]
        await asyncio.gather(*futures)
