"""Committing consumer offsets in the background: the latest acknowledged offsets win.

The settle stage reports offsets once every record below them was acknowledged by Kafka; this
committer sends them to the group coordinator on its own task (the commit itself runs on the
consumer's commit thread), so a commit round trip never holds the next batch's acks up. Only
acknowledged offsets are ever committed, so the at-least-once guarantee is unchanged; a crash
re-reads at most what was acknowledged but not yet committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Iterable, Mapping
from typing import Protocol

from shared.kafka_native import PartitionKey
from shared.logging import get_logger

__all__ = ["Committing", "OffsetCommitter"]

log = get_logger(__name__)


class Committing(Protocol):
    """What the committer needs of :class:`~shared.kafka_native.NativeConsumer`."""

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None: ...


class OffsetCommitter:
    def __init__(self, consumer: Committing) -> None:
        self._consumer = consumer
        self._acked: dict[PartitionKey, int] = {}
        self._committed: dict[PartitionKey, int] = {}
        self._wanted = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0

    def advance(self, offsets: Mapping[PartitionKey, int]) -> None:
        """Offsets (next to read) below which every record was handled and acknowledged."""
        for tp, offset in offsets.items():
            if offset > self._acked.get(tp, -1):
                self._acked[tp] = offset
        self._wanted.set()

    def forget(self, partitions: Iterable[PartitionKey]) -> None:
        """Drop revoked partitions (after :meth:`flush`): they are another member's now."""
        for tp in partitions:
            self._acked.pop(tp, None)
            self._committed.pop(tp, None)

    def uncommitted(self, partitions: Collection[PartitionKey]) -> dict[PartitionKey, int]:
        """Acknowledged offsets of ``partitions`` not committed yet (a revoke commits them)."""
        return {
            tp: o
            for tp, o in self._acked.items()
            if tp in partitions and self._committed.get(tp) != o
        }

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

    async def flush(self, partitions: Collection[PartitionKey] | None = None) -> None:
        """Commit whatever was acknowledged and is not committed yet (of ``partitions`` only,
        when given: a revoke commits just what it gives up); returns when done."""
        await self._commit_latest(partitions)

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            await self._commit_latest(None)

    async def _commit_latest(self, only: Collection[PartitionKey] | None) -> None:
        async with self._lock:
            pending = {
                tp: o
                for tp, o in self._acked.items()
                if self._committed.get(tp) != o and (only is None or tp in only)
            }
            if not pending:
                return
            try:
                await self._consumer.commit(pending)
            except Exception as exc:
                # Kept as acknowledged: the next commit carries these offsets again; after a
                # rebalance the new owner re-reads from the last commit (duplicates, no loss).
                log.warning("commit_failed", error=str(exc))
                return
            self._committed.update(pending)
            self.commits += 1
