"""Decision records survive the trip through the decisions topic unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, NamedTuple

from services.router.decision_log import (
    CHUNK_BYTES,
    MEMBER_HEADER,
    SCOPES_HEADER,
    DecisionLog,
    records_from_message,
)
from services.router.decisions import DecisionRecord
from shared.kafka_native import DeliveryBatch, Outgoing


class _Message(NamedTuple):  # the fields of an aiokafka ConsumerRecord the indexer reads
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class _Producer:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def produce_batch(
        self, messages: Iterable[Outgoing], delivery: DeliveryBatch, indexes: Iterable[int]
    ) -> tuple[int, list[int], str]:
        self.sent.extend(messages)
        return len(self.sent), [], ""


def _record(n: int, body: str = '{"x":1}') -> DecisionRecord:
    return DecisionRecord(f"a{n}", f"0000000000001:a{n}", ("all", "team:ops", "unrouted"), body)


async def _sent(records: list[DecisionRecord]) -> list[Outgoing]:
    producer = _Producer()
    DecisionLog(producer, "decisions").send(records)
    return producer.sent


def test_a_batch_of_decisions_travels_in_one_record() -> None:
    records = [_record(n) for n in range(500)]
    sent = asyncio.run(_sent(records))
    assert len(sent) == 1
    topic, key, value, headers = sent[0]
    assert topic == "decisions"
    assert records_from_message(_Message(key, value, headers)) == records


def test_large_batches_are_split_below_the_record_limit() -> None:
    records = [_record(n, '"' + "s" * 4000 + '"') for n in range(200)]
    sent = asyncio.run(_sent(records))
    assert len(sent) > 1
    assert all(len(value) < CHUNK_BYTES + 8192 for _, _, value, _ in sent)
    back = [
        r
        for _, key, value, headers in sent
        for r in records_from_message(_Message(key, value, headers))
    ]
    assert back == records


def test_one_decision_records_of_older_routers_are_still_read() -> None:
    record = _record(1)
    message: Any = _Message(
        key=record.alert_id.encode(),
        value=record.body.encode(),
        headers=[
            (MEMBER_HEADER, record.member.encode()),
            (SCOPES_HEADER, "\n".join(record.scopes).encode()),
        ],
    )
    assert records_from_message(message) == [record]


def test_a_record_no_router_wrote_is_skipped_not_fatal() -> None:
    from structlog.testing import capture_logs

    from services.router.decision_log import FORMAT_HEADER, ROWS_FORMAT, _readable

    class _Bad(NamedTuple):
        key: bytes | None
        value: bytes
        headers: list[tuple[str, bytes]]
        partition: int
        offset: int

    with capture_logs() as logs:
        assert _readable(_Bad(None, b"[1,2", [(FORMAT_HEADER, ROWS_FORMAT)], 0, 7)) == []
        assert _readable(_Bad(None, b"{}", [], 0, 8)) == []  # one-decision: no member header
    assert [e["event"] for e in logs] == ["decision_record_unreadable"] * 2
    assert logs[0]["offset"] == 7


class _Consumer:
    """The part of an AIOKafkaConsumer the indexer uses: one message per ``getmany``."""

    def __init__(self, messages: list[_Message]) -> None:
        self.messages = messages
        self.commits = 0

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[str, list[_Message]]:
        assert max_records >= 1
        if not self.messages:
            await asyncio.Event().wait()  # nothing more: a test that gets here is wrong
        return {"decisions-0": [self.messages.pop(0)]}

    async def commit(self) -> None:
        self.commits += 1


class _Store:
    def __init__(self) -> None:
        self.writes: list[int] = []
        self.indexer: Any = None

    async def write_many(self, records: list[DecisionRecord]) -> None:
        self.writes.append(len(records))
        self.indexer.stop()  # one write is what each test looks at


def _messages(count: int, decisions: int) -> list[_Message]:
    sent = asyncio.run(_sent([_record(n) for n in range(decisions)]))
    return [_Message(key, value, headers) for _, key, value, headers in sent] * count


async def _first_write(messages: list[_Message], linger_s: float) -> tuple[int, _Consumer]:
    from services.router.decision_log import DecisionIndexer

    consumer, store = _Consumer(messages), _Store()
    indexer = DecisionIndexer(consumer, store, linger_s=linger_s)  # type: ignore[arg-type]
    store.indexer = indexer
    await asyncio.wait_for(indexer.run(), timeout=30)
    return store.writes[0], consumer


def test_small_batches_are_gathered_into_one_write_up_to_2000_decisions() -> None:
    # An hour's linger: only the size ends the gathering, no clock is involved.
    written, consumer = asyncio.run(_first_write(_messages(6, 500), linger_s=3600))
    assert written == 2000
    assert len(consumer.messages) == 2  # the rest waits for the next write
    assert consumer.commits == 1


def test_a_write_gathers_at_most_16_records() -> None:
    written, consumer = asyncio.run(_first_write(_messages(20, 1), linger_s=3600))
    assert written == 16
    assert len(consumer.messages) == 4


def test_without_a_linger_what_arrived_is_written_at_once() -> None:
    written, consumer = asyncio.run(_first_write(_messages(3, 10), linger_s=0))
    assert written == 10
    assert len(consumer.messages) == 2
