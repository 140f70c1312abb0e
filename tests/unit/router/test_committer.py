from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from services.router.committer import ANSWER_TIMEOUT_S, OffsetCommitter
from shared.kafka_native import PartitionKey

TP0, TP1 = ("alerts", 0), ("alerts", 1)
GUARD_S = 10  # a hang detector only: a committer that never sends fails instead of hanging


class RecordingConsumer:
    """Records commits: synchronous ones (``flush``) and background ones, whose answers the
    test gives when it chooses (as the fetch thread's poll would)."""

    def __init__(self, *, refuse_sync: bool = False) -> None:
        self.sync: list[dict[PartitionKey, int]] = []
        self.background: list[dict[PartitionKey, int]] = []
        self.handed = asyncio.Event()
        self.refuse_sync = refuse_sync

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        if self.refuse_sync:
            raise RuntimeError("REBALANCE_IN_PROGRESS")
        self.sync.append(dict(offsets))

    async def commit_in_background(self, offsets: Mapping[PartitionKey, int]) -> None:
        self.background.append(dict(offsets))
        self.handed.set()

    async def next_background(self) -> dict[PartitionKey, int]:
        async with asyncio.timeout(GUARD_S):
            await self.handed.wait()
        self.handed.clear()
        return self.background[-1]


class WatchedClock:
    """A clock the test moves; ``consulted`` is set whenever the committer reads it, which it
    does when it hands a commit over and when it weighs an unanswered one (no wall time)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.consulted = asyncio.Event()

    def __call__(self) -> float:
        self.consulted.set()
        return self.now


def _ok(offsets: Mapping[PartitionKey, int]) -> dict[PartitionKey, tuple[int, str | None]]:
    return {tp: (o, None) for tp, o in offsets.items()}


@contextlib.asynccontextmanager
async def _running(committer: OffsetCommitter) -> AsyncIterator[OffsetCommitter]:
    committer.start()
    try:
        yield committer
    finally:
        await committer.stop()


async def test_one_background_commit_unanswered_at_a_time_and_the_latest_offsets_win() -> None:
    consumer, clock = RecordingConsumer(), WatchedClock()
    async with _running(OffsetCommitter(consumer, clock=clock)) as committer:
        committer.advance({TP0: 10})
        assert await consumer.next_background() == {TP0: 10}
        clock.consulted.clear()
        committer.advance({TP0: 20, TP1: 5})
        committer.advance({TP0: 15})  # older than what is acknowledged: ignored
        await asyncio.wait_for(
            clock.consulted.wait(), GUARD_S
        )  # the committer weighed the unanswered commit ...
        assert consumer.background == [{TP0: 10}]  # ... and kept waiting for its answer
        committer.answered(_ok({TP0: 10}))
        assert await consumer.next_background() == {TP0: 20, TP1: 5}
        committer.answered(_ok({TP0: 20, TP1: 5}))
        assert committer.uncommitted({TP0, TP1}) == {}
        assert committer.commits == 2
    assert consumer.sync == []  # everything was confirmed: nothing left to flush
    assert len(consumer.background) == 2  # nothing sent twice


async def test_a_refused_commit_is_carried_by_the_next_one() -> None:
    consumer = RecordingConsumer()
    async with _running(OffsetCommitter(consumer)) as committer:
        committer.advance({TP0: 10, TP1: 3})
        assert await consumer.next_background() == {TP0: 10, TP1: 3}
        committer.answered({TP0: (10, "REBALANCE_IN_PROGRESS"), TP1: (3, None)})
        assert committer.refused == 1
        assert committer.uncommitted({TP0, TP1}) == {TP0: 10}  # a revoke would commit it
        committer.advance({TP1: 4})
        assert await consumer.next_background() == {TP0: 10, TP1: 4}


async def test_a_revoke_commits_unconfirmed_offsets_of_only_the_partitions_it_gives_up() -> None:
    consumer = RecordingConsumer()
    async with _running(OffsetCommitter(consumer)) as committer:
        committer.advance({TP0: 3, TP1: 4})
        await consumer.next_background()  # handed over, never answered
        assert committer.uncommitted({TP1}) == {TP1: 4}
        await committer.flush({TP1})
        assert consumer.sync == [{TP1: 4}]
        assert committer.uncommitted({TP0, TP1}) == {TP0: 3}
    assert consumer.sync[-1] == {TP0: 3}  # the shutdown flush waits for the coordinator


async def test_forgotten_partitions_are_not_committed_and_late_answers_are_ignored() -> None:
    consumer = RecordingConsumer()
    committer = OffsetCommitter(consumer)
    committer.advance({TP0: 3, TP1: 4})
    committer.forget([TP1])
    committer.answered(_ok({TP1: 4}))  # an answer for a partition given up meanwhile
    assert committer.uncommitted({TP0, TP1}) == {TP0: 3}
    await committer.flush()
    assert consumer.sync == [{TP0: 3}]


async def test_a_refused_flush_leaves_the_offsets_uncommitted() -> None:
    consumer = RecordingConsumer(refuse_sync=True)
    committer = OffsetCommitter(consumer)
    committer.advance({TP0: 3})
    await committer.flush()
    assert committer.uncommitted({TP0}) == {TP0: 3}


async def test_an_unanswered_commit_is_given_up_after_the_timeout_and_sent_again() -> None:
    consumer, clock = RecordingConsumer(), WatchedClock()
    async with _running(OffsetCommitter(consumer, clock=clock)) as committer:
        committer.advance({TP0: 10})
        assert await consumer.next_background() == {TP0: 10}
        clock.consulted.clear()
        clock.now += ANSWER_TIMEOUT_S - 1
        committer.advance({TP0: 11})
        await asyncio.wait_for(
            clock.consulted.wait(), GUARD_S
        )  # weighed a second before the timeout: still waits
        assert consumer.background == [{TP0: 10}]
        clock.now += 1
        committer.advance({TP0: 12})
        assert await consumer.next_background() == {TP0: 12}
