"""The audit topic's FastStream subscriber: polled batches handed to :class:`AuditConsumer`.

One router per service. The handler is a thin adapter: the batch's raw records (FastStream's
decoding is skipped: the consumer validates the raw bytes itself and quarantines bad ones with
their original bytes) and the consumer to commit on go to :meth:`AuditConsumer.handle`.
Acknowledgement is manual (``AckPolicy.MANUAL``): offsets are committed, named, only once the
batch is fsynced (see :mod:`services.audit.consumer` for why not ``message.ack()``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from aiokafka import TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage

from services.audit.consumer import AuditConsumer, Commit
from shared.events import Event

__all__ = ["SUBSCRIBER_DESCRIPTION", "AuditSubscription", "build_audit_router"]

SUBSCRIBER_DESCRIPTION: Final = (
    "Lifecycle events (token.*, user.*, team.*, rule.*, ruleset.applied) relayed by each "
    "source's outbox, keyed by source. The audit service appends each event once to its "
    "hash-chained log and commits the offsets only after the fsync; a value that is not an "
    "Event (or holds a token-shaped string) is quarantined with its original bytes. Consumed "
    "in batches (ALERTYARD_AUDIT_BATCH_MAX_RECORDS); each message is one Event."
)


async def _skip_decoding(message: StreamMessage[Any]) -> list[Event]:
    """Nothing decoded per message: the handler validates the raw records as one batch (and
    quarantines bad ones with their reasons), far cheaper than FastStream's per-message path."""
    return []


CommitFor = Callable[[Any], Commit]
"""The commit function for the consumer a batch came from."""


def _commit_on(consumer: Any) -> Commit:
    async def commit(offsets: dict[TopicPartition, int]) -> None:
        await consumer.commit(offsets)

    return commit


class AuditSubscription:
    """The router plus what the service needs from it once started."""

    def __init__(self, router: KafkaRouter, subscriber: Any) -> None:
        self.router = router
        self._subscriber = subscriber

    @property
    def assigned(self) -> bool:
        """Partitions assigned to this member (readiness)."""
        consumer = self._subscriber.consumer
        return consumer is not None and bool(consumer.assignment())


def build_audit_router(
    consumer: AuditConsumer | None,
    *,
    topic: str,
    group_id: str,
    max_records: int = 1000,
    poll_timeout_ms: int = 500,
    fetch_max_wait_ms: int = 50,
    commit_for: CommitFor | None = None,
) -> AuditSubscription:
    """The audit subscriber on ``topic``; ``consumer`` None declares it for the AsyncAPI
    document only. ``commit_for`` is replaced in unit tests (``TestKafkaBroker``'s consumer
    cannot commit offsets)."""
    commit_on = commit_for or _commit_on
    router = KafkaRouter()
    subscriber = router.subscriber(
        topic,
        group_id=group_id,
        batch=True,
        max_records=max_records,
        batch_timeout_ms=poll_timeout_ms,
        fetch_max_wait_ms=fetch_max_wait_ms,
        auto_offset_reset="earliest",  # nothing published before the first start is skipped
        ack_policy=AckPolicy.MANUAL,
        title=f"{topic}:audit",
        description=SUBSCRIBER_DESCRIPTION,
    )

    @subscriber(decoder=_skip_decoding)
    async def on_audit_events(batch: list[Event], message: KafkaMessage) -> None:
        """``batch`` declares the payload for the AsyncAPI document and stays empty (see
        ``_skip_decoding``); the raw records in ``message`` are what is appended."""
        if consumer is None:
            return
        await consumer.handle(message.raw_message, commit_on(message.consumer))

    return AuditSubscription(router, subscriber)
