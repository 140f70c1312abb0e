from __future__ import annotations

import asyncio
from collections.abc import Mapping

from services.router.committer import OffsetCommitter
from shared.kafka_native import PartitionKey

TP0, TP1 = ("alerts", 0), ("alerts", 1)


class RecordingConsumer:
    """Records commit calls. ``gated``: each commit waits for :attr:`release`, like a
    coordinator round trip the test finishes when it chooses."""

    def __init__(self, *, gated: bool = False) -> None:
        self.commits: list[dict[PartitionKey, int]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        if not gated:
            self.release.set()

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        self.started.set()
        await self.release.wait()
        self.commits.append(dict(offsets))


async def test_latest_acknowledged_offsets_win_and_only_changes_are_sent() -> None:
    consumer = RecordingConsumer(gated=True)
    committer = OffsetCommitter(consumer)
    committer.start()
    committer.advance({TP0: 10})
    await consumer.started.wait()  # the first commit is in flight
    committer.advance({TP0: 20, TP1: 5})
    committer.advance({TP0: 15})  # older than what is acknowledged: ignored
    consumer.release.set()
    await committer.flush()
    await committer.stop()
    assert consumer.commits[0] == {TP0: 10}
    assert consumer.commits[-1] == {TP0: 20, TP1: 5}
    assert len(consumer.commits) == 2  # nothing sent twice


async def test_forgotten_partitions_are_not_committed() -> None:
    consumer = RecordingConsumer()
    committer = OffsetCommitter(consumer)
    committer.advance({TP0: 3, TP1: 4})
    committer.forget([TP1])
    await committer.flush()
    assert consumer.commits == [{TP0: 3}]


async def test_a_revoke_commits_only_the_partitions_it_gives_up() -> None:
    consumer = RecordingConsumer()
    committer = OffsetCommitter(consumer)
    committer.advance({TP0: 3, TP1: 4})
    await committer.flush({TP1})
    assert consumer.commits == [{TP1: 4}]
    await committer.flush()
    assert consumer.commits[-1] == {TP0: 3}
