"""Committing consumer offsets in the background: the latest acknowledged offsets win.

The settle stage reports offsets once every record below them was acknowledged by Kafka; this
committer sends them to the group coordinator on its own task, so a commit round trip never
holds the next batch's acks up. Only acknowledged offsets are ever committed, so the
at-least-once guarantee is unchanged; a crash re-reads at most what was acknowledged but not yet
committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import TopicPartition

from shared.logging import get_logger

__all__ = ["OffsetCommitter"]

log = get_logger(__name__)


class OffsetCommitter:
    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        self._acked: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._wanted = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    def advance(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Offsets (next to read) below which every record was handled and acknowledged."""
        for tp, offset in offsets.items():
            if offset > self._acked.get(tp, -1):
                self._acked[tp] = offset
        self._wanted.set()

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop revoked partitions (after :meth:`flush`): they are another member's now."""
        for tp in partitions:
            self._acked.pop(tp, None)
            self._committed.pop(tp, None)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="offset-committer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def flush(self) -> None:
        """Commit whatever was acknowledged and is not committed yet; returns when done."""
        await self._commit_latest()

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self._commit_latest()

    async def _commit_latest(self) -> None:
        async with self._lock:
            pending = {tp: o for tp, o in self._acked.items() if self._committed.get(tp) != o}
            if not pending:
                return
            try:
                await self._consumer.commit(pending)
            except CommitFailedError as exc:
                # The group rebalanced: the new owner re-reads from the last commit
                # (duplicates, never a loss).
                log.warning("commit_failed_rebalanced", error=str(exc))
                return
            except KafkaError as exc:
                # Kept as acknowledged: the next commit carries these offsets again.
                log.warning("commit_failed", error=repr(exc))
                return
            self._committed.update(pending)
            self.commits += 1
