"""Fixtures for the audit integration tests: a unique audit topic and an in-process consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from services.audit.consumer import AuditConsumer
from services.audit.log import AuditLog
from services.audit.quarantine import Quarantine
from services.audit.signing import load_or_create_signing_key
from services.audit.subscriber import CommitFor, build_audit_router
from shared.events import Event
from shared.kafka import ensure_topics, make_producer


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
        consumer: AuditConsumer | None = None,
        commit_for: CommitFor | None = None,
        max_records: int = 1000,
    ) -> AuditConsumer:
        """Run the service's subscriber on a real broker until ``done`` holds, then let the
        batch in hand finish and commit (or fail after ``timeout_s``, a guard only)."""
        consumer = consumer or AuditConsumer(audit_log, Quarantine(self.log_dir))
        subscription = build_audit_router(
            consumer,
            topic=self.topic,
            group_id=group or self.group,
            max_records=max_records,
            poll_timeout_ms=200,
            commit_for=commit_for,
        )
        broker = KafkaBroker(self.bootstrap, log_level=logging.DEBUG)
        broker.include_router(subscription.router)
        await broker.start()
        try:
            async with asyncio.timeout(timeout_s):
                await consumer.wait_until(done)
                await consumer.drain()
        finally:
            await broker.stop()
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
