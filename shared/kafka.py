"""Connecting to Kafka: tuned aiokafka clients and idempotent topic creation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared.retries import RetryPolicy

__all__ = ["ensure_topics", "make_consumer", "make_producer", "wait_for_kafka"]

KAFKA_START_RETRY: Final = RetryPolicy(
    name="waiting for Kafka at start-up",
    on=Exception,  # connection refused, no leader yet, ...: not ready yet
    wait_initial=0.2,
    wait_max=2.0,
    timeout=60.0,  # wait_for_kafka's timeout_s replaces it
)


def make_producer(bootstrap: str, **overrides: Any) -> AIOKafkaProducer:
    """A producer for at-least-once delivery: ``acks=all``, idempotent, batched with linger."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "max_batch_size": 256 * 1024,
        "request_timeout_ms": 30_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def make_consumer(
    bootstrap: str, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer that commits by hand (after its work is durable) and starts at the earliest
    offset when its group has none, so nothing published before the first start is skipped."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": 500,
        "isolation_level": "read_committed",
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)


async def ensure_topics(
    bootstrap: str, names: Iterable[str], *, partitions: int = 6, replication_factor: int = 1
) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if not missing:
            return
        new = [
            NewTopic(n, num_partitions=partitions, replication_factor=replication_factor)
            for n in missing
        ]
        # Another process may create one first: that is the outcome we wanted.
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(new)
    finally:
        await admin.close()


async def wait_for_kafka(bootstrap: str, *, timeout_s: float = 60.0) -> list[str]:
    """Wait until the cluster answers a metadata request; returns its topic names."""
    try:
        async for attempt in replace(KAFKA_START_RETRY, timeout=timeout_s).retrying():
            with attempt:
                return await _list_topics(bootstrap)
    except Exception as exc:  # any failure means "not ready yet" until the time is up
        raise TimeoutError(
            f"Kafka at {bootstrap} did not answer within {timeout_s}s: {exc}"
        ) from None
    raise AssertionError("unreachable: the retry loop returns or raises")


async def _list_topics(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        return list(await admin.list_topics())
    finally:
        await admin.close()
