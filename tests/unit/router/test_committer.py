from __future__ import annotations

import asyncio

from aiokafka.structs import TopicPartition

from services.router.committer import OffsetCommitter

TP0, TP1 = TopicPartition("alerts", 0), TopicPartition("alerts", 1)


class RecordingConsumer:
    """Records commit calls; each takes a moment, like a coordinator round trip."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await asyncio.sleep(0.01)
        self.commits.append(dict(offsets))


async def test_latest_acknowledged_offsets_win_and_only_changes_are_sent() -> None:
    consumer = RecordingConsumer()
    committer = OffsetCommitter(consumer)
    committer.start()
    committer.advance({TP0: 10})
    await asyncio.sleep(0)  # the first commit starts
    committer.advance({TP0: 20, TP1: 5})
    committer.advance({TP0: 15})  # older than what is acknowledged: ignored
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
