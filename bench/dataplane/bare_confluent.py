"""(a) The ceiling: a bare confluent-kafka (librdkafka) consume -> produce-by-field -> commit
loop, pipelined: batches are handed to the producer without a flush, and a batch's offsets
are committed once its delivery reports, and those of every earlier batch, are in.

``python -m bench.dataplane.bare_confluent SPEC`` serves the loop until stdin closes (the
latency reference); :func:`route` is the throughput loop, run in the bench process.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from bench.dataplane.workload import TEAMS, librdkafka_producer
from shared.settings import TopicSettings

__all__ = ["route"]

BATCH = 500


class _Batch:
    """Copies of one consumed batch still awaiting their delivery reports."""

    __slots__ = ("offsets", "pending", "records")

    def __init__(self) -> None:
        self.pending = 0
        self.records = 0
        self.offsets: dict[tuple[str, int], int] = {}

    def delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:  # a failed delivery fails the benchmark: never skip a record
            raise RuntimeError(f"delivery failed: {err}")
        self.pending -= 1


def _consumer(bootstrap: str, group: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


def _team_topics(topics: TopicSettings) -> dict[str, str]:
    """The routing field (``service``) -> team topic; the rules of ``bench_router``."""
    by_service = {}
    for team in TEAMS:
        for service in (f"{team}-svc", f"{team}-db"):
            by_service[service] = topics.team_topic(team)
    return by_service


class _Loop:
    def __init__(self, consumer: Consumer, producer: Producer, topics: TopicSettings) -> None:
        self.consumer = consumer
        self.producer = producer
        self.by_service = _team_topics(topics)
        self.fallback = topics.team_topic("sre")
        self.batches: deque[_Batch] = deque()
        self.committed = 0
        self.last: dict[tuple[str, int], int] = {}
        self.assigned_at: float | None = None

    def on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if partitions and self.assigned_at is None:
            self.assigned_at = time.perf_counter()

    def step(self, timeout: float) -> None:
        """One turn: take a batch, hand its copies over, commit what is fully delivered."""
        messages = self.consumer.consume(BATCH, timeout)
        if messages:
            batch = _Batch()
            for m in messages:
                if m.error() is not None:
                    raise RuntimeError(f"consume failed: {m.error()}")
                value = m.value()
                assert value is not None
                topic = self.by_service.get(orjson.loads(value)["service"], self.fallback)
                self._produce(topic, value, m.key(), m.headers(), batch.delivered)
                batch.pending += 1
                batch.records += 1
                # Never None on a consumed message; no per-record check in the ceiling loop.
                batch.offsets[(m.topic(), m.partition())] = m.offset() + 1  # type: ignore[index,operator]
            self.batches.append(batch)
        self.producer.poll(0)  # serves delivery reports
        offsets: dict[tuple[str, int], int] = {}
        while self.batches and self.batches[0].pending == 0:
            done = self.batches.popleft()
            offsets.update(done.offsets)
            self.committed += done.records
        if offsets:
            self.last.update(offsets)
            self.consumer.commit(offsets=_partitions(offsets), asynchronous=True)

    def _produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Any,
        on_delivery: Callable[[KafkaError | None, Message], None],
    ) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                return
            except BufferError:  # local queue full: serve reports until there is room
                self.producer.poll(0.01)

    def close(self) -> None:
        self.producer.flush(30)
        if self.last:
            self.consumer.commit(offsets=_partitions(self.last), asynchronous=False)
        self.consumer.close()


def _partitions(offsets: dict[tuple[str, int], int]) -> list[TopicPartition]:
    return [TopicPartition(t, p, o) for (t, p), o in offsets.items()]


def route(bootstrap: str, topics: TopicSettings, count: int) -> float:
    """Route ``count`` pre-produced alerts in a fresh group; seconds from assignment to the
    last commit."""
    loop = _Loop(
        _consumer(bootstrap, f"dp-bare-rdk-{uuid.uuid4().hex[:8]}"),
        librdkafka_producer(bootstrap),
        topics,
    )
    loop.consumer.subscribe([topics.alerts], on_assign=loop.on_assign)
    while loop.committed < count:
        loop.step(0.05)
    loop.producer.flush(30)
    loop.consumer.commit(offsets=_partitions(loop.last), asynchronous=False)
    end = time.perf_counter()
    loop.consumer.close()
    assert loop.assigned_at is not None
    return end - loop.assigned_at


def _serve(spec: dict[str, Any]) -> None:
    """Forward until stdin closes; 'ready' once partitions are assigned."""
    topics = TopicSettings.model_validate(spec["topics"])
    loop = _Loop(
        _consumer(spec["bootstrap"], spec["group"]), librdkafka_producer(spec["bootstrap"]), topics
    )
    loop.consumer.subscribe([topics.alerts], on_assign=loop.on_assign)
    closed = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        closed.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    ready = False
    while not closed.is_set():
        loop.step(spec.get("batch_timeout_s", 0.005))
        if not ready and loop.assigned_at is not None:
            ready = True
            print("ready", flush=True)
    loop.close()


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
