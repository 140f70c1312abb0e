"""The batch publisher: failed sends and unacknowledged records are retried until acked."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import KafkaTimeoutError
from aiokafka.structs import RecordMetadata, TopicPartition

from services.router.plan import OutMessage
from services.router.publisher import BatchPublisher


class FlakyProducer:
    """Fails the first ``fail_sends`` sends and the first ``fail_acks`` deliveries."""

    def __init__(self, *, fail_sends: int = 0, fail_acks: int = 0) -> None:
        self.fail_sends, self.fail_acks = fail_sends, fail_acks
        self.sent: list[bytes] = []

    async def send(self, topic: str, *, value: bytes, key: Any, headers: Any) -> Any:
        if self.fail_sends:
            self.fail_sends -= 1
            raise KafkaTimeoutError("no metadata")
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        if self.fail_acks:
            self.fail_acks -= 1
            future.set_exception(KafkaTimeoutError("not acknowledged"))
        else:
            self.sent.append(value)
            offset = len(self.sent)
            future.set_result(RecordMetadata(topic, 0, TopicPartition(topic, 0), offset, -1, 0, 0))
        return future


class FlakyTopics:
    def __init__(self, failures: int = 0) -> None:
        self.failures = failures

    async def ensure(self, topics: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaTimeoutError("broker down")


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
