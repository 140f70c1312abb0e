"""The batch publisher: refused and undelivered records are produced again until acked."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from confluent_kafka import KafkaError

from services.router.plan import OutMessage
from services.router.publisher import BatchPublisher, DeliveryFailedError
from shared.kafka_native import DeliveryBatch, Outgoing


class _Delivered:  # the parts of a librdkafka Message a delivery report reads
    def __init__(self, topic: str, offset: int) -> None:
        self._topic, self._offset = topic, offset

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FlakyProducer:
    """Refuses the first ``fail_sends`` records (a full queue) and fails the first
    ``fail_acks`` deliveries; reports arrive at once, as from the producer's poll."""

    def __init__(self, *, fail_sends: int = 0, fail_acks: int = 0) -> None:
        self.fail_sends, self.fail_acks = fail_sends, fail_acks
        self.sent: list[bytes] = []

    def produce_batch(
        self, messages: Iterable[Outgoing], delivery: DeliveryBatch, indexes: Iterable[int]
    ) -> tuple[int, list[int], str]:
        handed, refused = 0, []
        for index, (topic, _, value, _) in zip(indexes, messages, strict=True):
            if self.fail_sends:
                self.fail_sends -= 1
                refused.append(index)
                continue
            handed += 1
            message: Any = _Delivered(topic, len(self.sent) + 1)
            if self.fail_acks:
                self.fail_acks -= 1
                delivery.report(index, KafkaError(KafkaError._MSG_TIMED_OUT), message)
            else:
                self.sent.append(value)
                delivery.report(index, None, message)
        return handed, refused, "BufferError()" if refused else ""


class FlakyTopics:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures

    def is_known(self, topic: str) -> bool:
        return False

    async def ensure(self, topics: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise TimeoutError("broker down")


def _messages(n: int) -> list[OutMessage]:
    return [OutMessage("alerts.team.a", None, f"m{i}".encode(), []) for i in range(n)]


async def test_everything_acked_first_time_needs_no_retry() -> None:
    producer = FlakyProducer()
    publisher = BatchPublisher(producer, FlakyTopics())  # type: ignore[arg-type]  # doubles
    results = await publisher.publish(_messages(3))
    assert [r.offset for r in results] == [1, 2, 3]
    assert publisher.retries == 0


async def test_failed_sends_and_acks_are_sent_again_until_acked() -> None:
    producer = FlakyProducer(fail_sends=2, fail_acks=3)
    topics = FlakyTopics(failures=2)
    publisher = BatchPublisher(producer, topics)  # type: ignore[arg-type]  # doubles
    messages = _messages(5)
    results = await publisher.publish(messages)
    assert len(results) == 5
    assert sorted(producer.sent) == sorted(m.value for m in messages)  # each exactly once acked
    assert publisher.retries >= 5
    assert topics.failures == 0


async def test_exactly_once_a_failed_delivery_raises_for_a_replay() -> None:
    producer = FlakyProducer(fail_acks=1)
    publisher = BatchPublisher(producer, FlakyTopics(), retry_failed=False)  # type: ignore[arg-type]  # doubles
    with pytest.raises(DeliveryFailedError):
        await publisher.publish(_messages(2))
