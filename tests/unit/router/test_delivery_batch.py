"""``DeliveryBatch``: the last report of a batch wakes its waiter once, wherever it was served.

Reports are served on the event loop (``NativeProducer``), or on an executor thread when a
transaction call flushes: the first wakes the waiter directly, the second through the loop.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from confluent_kafka import KafkaError

from shared.kafka_native import Delivered, DeliveryBatch


class _Report:  # the parts of a librdkafka Message a delivery report reads
    def __init__(self, offset: int) -> None:
        self._offset = offset

    def topic(self) -> str:
        return "t"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return self._offset


def _report_all(delivery: DeliveryBatch, size: int, failing: int | None = None) -> None:
    for index in range(size):
        err = KafkaError(KafkaError._MSG_TIMED_OUT) if index == failing else None
        delivery.report(index, err, _Report(100 + index))  # type: ignore[arg-type]


async def test_reports_served_on_the_loop_complete_the_batch_without_a_loop_turn() -> None:
    delivery = DeliveryBatch(asyncio.get_running_loop(), 3)
    delivery.seal(3)
    _report_all(delivery, 3)
    waiting = delivery.wait()
    with pytest.raises(StopIteration):  # done at once: the waiter never suspends
        waiting.send(None)
    assert delivery.placed == [Delivered("t", 2, 100 + n) for n in range(3)]


async def test_reports_served_on_another_thread_wake_the_loop() -> None:
    delivery = DeliveryBatch(asyncio.get_running_loop(), 3)
    delivery.seal(3)
    served_on: list[int] = []

    def serve() -> None:  # as a flush inside a transaction call would
        served_on.append(threading.get_ident())
        _report_all(delivery, 3, failing=1)

    await asyncio.to_thread(serve)
    await asyncio.wait_for(delivery.wait(), timeout=30)  # a hang guard, not a timing
    assert served_on != [threading.get_ident()]
    assert delivery.failed == [1]
    assert delivery.placed[1] is None
    assert delivery.placed[0] == Delivered("t", 2, 100)
    assert delivery.error


async def test_a_batch_sealed_after_its_reports_is_complete() -> None:
    delivery = DeliveryBatch(asyncio.get_running_loop(), 2)
    _report_all(delivery, 2)
    delivery.seal(2)
    await asyncio.wait_for(delivery.wait(), timeout=30)
    assert delivery.reported == 2
