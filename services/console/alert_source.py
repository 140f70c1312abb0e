"""Reading an alert's own bytes back from Kafka, for "explain this alert".

A routing decision names the record the router consumed (topic, partition, offset); the
explanation evaluates that very alert against the current ruleset, parsed by the router's own
payload checks. The caller has already
been allowed to see the decision by the router's API.
"""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from services.router.intake import parse_value
from shared.alert import Alert
from shared.errors import UnavailableError
from shared.kafka import make_consumer

__all__ = ["read_alert"]


async def read_alert(
    bootstrap: str, *, topic: str, partition: int, offset: int, timeout_s: float = 5.0
) -> Alert | None:
    """The alert at ``topic/partition/offset``; None when it is gone (retention) or invalid."""
    consumer = make_consumer(bootstrap, group_id=None)
    try:
        await consumer.start()
    except KafkaError as exc:
        raise UnavailableError(
            f"Kafka did not answer ({type(exc).__name__}); the explanation needs the alert's "
            "record: try again shortly"
        ) from exc
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, offset)
        async with asyncio.timeout(timeout_s):
            while True:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
                for record in batch.get(tp, []):
                    if record.offset != offset:
                        return None  # compacted or deleted: the next record is another alert
                    parsed = parse_value(record.value)
                    return parsed if isinstance(parsed, Alert) else None
    except TimeoutError:
        return None
    finally:
        await consumer.stop()
