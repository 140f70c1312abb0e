"""DecisionWriter keeps every decision it has not written, even when the buffer overflows
while a write is in flight (it used to pop newer, unwritten records after such an overflow)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

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


class _Model:
    """The documented behaviour, stated plainly: a FIFO of waiting records, the oldest waiting
    dropped past ``max_buffered``; a write takes up to ``max_write`` from the front out of the
    queue (never dropped while in flight) and puts them back in front if it fails."""

    def __init__(self, max_buffered: int, max_write: int) -> None:
        self.waiting: deque[int] = deque()
        self.max_buffered, self.max_write = max_buffered, max_write
        self.written: list[int] = []
        self.dropped: list[int] = []

    def add(self, ids: range) -> None:
        self.waiting.extend(ids)
        self._trim()

    def _trim(self) -> None:
        while len(self.waiting) > self.max_buffered:
            self.dropped.append(self.waiting.popleft())

    def take(self) -> list[int]:
        return [self.waiting.popleft() for _ in range(min(len(self.waiting), self.max_write))]

    def done(self, batch: list[int], *, failed: bool) -> None:
        if failed:
            self.waiting.extendleft(reversed(batch))
            self._trim()
        else:
            self.written.extend(batch)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=6), st.booleans()), min_size=1, max_size=30
    ),
    max_buffered=st.integers(min_value=1, max_value=8),
    max_write=st.integers(min_value=1, max_value=4),
)
def test_writes_and_drops_match_the_documented_queue(
    steps: list[tuple[int, bool]], max_buffered: int, max_write: int
) -> None:
    """Any interleaving of adds (some while a write is in flight) and failed writes writes and
    drops exactly what the plain model does: each record written once, in order, or dropped
    from the oldest waiting (the old flush popped N records after the write, so after an
    overflow it popped newer, unwritten ones; this test fails on it)."""

    async def scenario() -> None:
        store = _GatedStore()
        writer = DecisionWriter(
            cast(DecisionStore, store), max_buffered=max_buffered, max_write=max_write
        )
        model = _Model(max_buffered, max_write)
        added = 0
        for during_write, fails in steps:
            writer.add(_records(added))
            model.add(range(added, added + 1))
            added += 1
            store.gate.clear()
            store.started.clear()
            store.fail = fails
            flushing = asyncio.create_task(writer.flush())
            await store.started.wait()
            batch = model.take()
            writer.add(_records(*range(added, added + during_write)))  # while it writes
            model.add(range(added, added + during_write))
            added += during_write
            store.gate.set()
            await flushing
            model.done(batch, failed=fails)
        store.fail = False
        store.gate.set()
        while writer.buffered:
            assert await writer.flush()
        while model.waiting:
            model.done(model.take(), failed=False)
        assert [int(i[1:]) for i in store.written] == model.written
        assert writer.dropped == len(model.dropped)

    asyncio.run(scenario())
