"""Fixtures for the audit integration tests: a unique audit topic and an in-process consumer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from services.audit.consumer import AuditConsumer
from services.audit.log import AuditLog
from services.audit.quarantine import Quarantine
from services.audit.signing import load_or_create_signing_key
from shared.events import Event
from shared.kafka import ensure_topics, make_consumer, make_producer


@dataclass
class Pipeline:
    """A unique topic, a producer on it, and a way to run the audit consumer over it."""

    topic: str
    group: str
    bootstrap: str
    log_dir: Path
    producer: AIOKafkaProducer

    async def publish(self, values: Iterable[tuple[bytes, bytes]]) -> None:
        """Send ``(key, value)`` pairs, waiting for every acknowledgement."""
        futures = [await self.producer.send(self.topic, key=k, value=v) for k, v in values]
        await asyncio.gather(*futures)

    async def publish_events(self, events: Iterable[Event]) -> None:
        await self.publish((e.source.encode(), e.to_bytes()) for e in events)

    def open_log(self) -> AuditLog:
        key = load_or_create_signing_key(self.log_dir, None)
        return AuditLog.open(self.log_dir, signing_key=key, checkpoint_every_records=50)

    async def consume_until(
        self,
        audit_log: AuditLog,
        done: Callable[[AuditConsumer], bool],
        *,
        group: str | None = None,
        timeout_s: float = 30.0,
    ) -> AuditConsumer:
        """Run the real consume/append/commit loop until ``done`` holds (or fail)."""
        kafka = make_consumer(
            self.bootstrap, self.topic, group_id=group or self.group, fetch_max_wait_ms=50
        )
        await kafka.start()
        consumer = AuditConsumer(audit_log, kafka, Quarantine(self.log_dir), poll_timeout_ms=200)
        try:
            async with asyncio.timeout(timeout_s):
                while not done(consumer):
                    await consumer.step()
        finally:
            await kafka.stop()
        return consumer


@pytest.fixture
async def pipeline(
    kafka_bootstrap: str, unique: Callable[[str], str], tmp_path: Path
) -> AsyncIterator[Pipeline]:
    topic = unique("audit-it")
    await ensure_topics(kafka_bootstrap, [topic], partitions=3)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        yield Pipeline(topic, unique("audit-g"), kafka_bootstrap, tmp_path / "log", producer)
    finally:
        await producer.stop()
