"""DecisionWriter keeps every decision it has not written, even when the buffer overflows
while a write is in flight (it used to pop newer, unwritten records after such an overflow)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import cast

from services.router.decisions import DecisionRecord, DecisionStore, DecisionWriter


class _GatedStore:
    """Stands in for the Redis store: each write waits until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.fail = False
        self.written: list[str] = []

    async def write_many(self, decisions: Sequence[DecisionRecord]) -> None:
        self.started.set()
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("redis is down")
        self.written.extend(d.alert_id for d in decisions)


def _records(*ids: int) -> list[DecisionRecord]:
    return [DecisionRecord(f"a{i}", f"0000000000000:a{i}", ("all",), "{}") for i in ids]


async def test_overflow_during_a_write_drops_only_older_waiting_records() -> None:
    store = _GatedStore()
    writer = DecisionWriter(cast(DecisionStore, store), max_buffered=4, max_write=2)
    writer.add(_records(1, 2, 3))
    flushing = asyncio.create_task(writer.flush())
    await store.started.wait()  # a1, a2 are being written
    writer.add(_records(4, 5, 6, 7))  # 5 waiting > 4: the oldest waiting one goes
    assert writer.buffered == 2 + 4
    store.gate.set()
    assert await flushing
    while writer.buffered:
        assert await writer.flush()
    assert store.written == ["a1", "a2", "a4", "a5", "a6", "a7"]
    assert writer.dropped == 1  # a3 only, counted; never a newer record, never one written


async def test_a_failed_write_puts_its_records_back_in_order() -> None:
    store = _GatedStore()
    store.fail = True
    writer = DecisionWriter(cast(DecisionStore, store), max_buffered=10, max_write=2)
    writer.add(_records(1, 2, 3))
    flushing = asyncio.create_task(writer.flush())
    await store.started.wait()
    writer.add(_records(4))
    store.gate.set()
    assert not await flushing
    store.fail = False
    while writer.buffered:
        assert await writer.flush()
    assert store.written == ["a1", "a2", "a3", "a4"]
    assert writer.dropped == 0
