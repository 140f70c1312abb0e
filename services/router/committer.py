"""Committing consumer offsets in the background: the latest acknowledged offsets win.

The settle stage reports offsets once every record below them was acknowledged by Kafka; this
committer sends them to the group coordinator on its own task, so a commit round trip never
holds the next batch's acks up. Only acknowledged offsets are ever committed, so the
at-least-once guarantee is unchanged; a crash re-reads at most what was acknowledged but not
yet committed.

Steady-state commits are asynchronous, one unanswered at a time: librdkafka's synchronous
commit holds its fetching up while it waits (measured under a backlog: the router's next fetch
waited ~3 ms per 500-record batch, a commit per batch halved a bare consumer's rate). The
answer arrives through :meth:`OffsetCommitter.answered`; a refused commit is sent again with
the next one. A drain, a shutdown and a revoke commit synchronously (:meth:`flush`): they must
know the commit was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Final, Protocol

from shared.kafka_native import CommitAnswers, PartitionKey
from shared.logging import get_logger

__all__ = ["Committing", "OffsetCommitter"]

log = get_logger(__name__)

ANSWER_TIMEOUT_S: Final = 30.0
"""A background commit unanswered this long is given up on (librdkafka answers every commit,
refused ones included, as the fetch thread polls); the next one carries its offsets."""


class Committing(Protocol):
    """What the committer needs of :class:`~shared.kafka_native.NativeConsumer`."""

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        """Commit and wait for the coordinator's answer (raises when it refused)."""

    async def commit_in_background(self, offsets: Mapping[PartitionKey, int]) -> None:
        """Hand over a commit; its answer comes to :meth:`OffsetCommitter.answered`."""


class OffsetCommitter:
    def __init__(
        self, consumer: Committing, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._consumer = consumer
        self._clock = clock
        self._sent_at = 0.0
        self._acked: dict[PartitionKey, int] = {}
        self._sent: dict[PartitionKey, int] = {}
        """Last offsets handed over, answered or not (not sent again unless refused)."""
        self._confirmed: dict[PartitionKey, int] = {}
        """Last offsets the coordinator confirmed."""
        self._unanswered: dict[PartitionKey, int] = {}
        """The background commit awaiting its answer (none is sent meanwhile)."""
        self._wanted = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        """Commits the coordinator confirmed."""
        self.refused = 0

    def advance(self, offsets: Mapping[PartitionKey, int]) -> None:
        """Offsets (next to read) below which every record was handled and acknowledged."""
        for tp, offset in offsets.items():
            if offset > self._acked.get(tp, -1):
                self._acked[tp] = offset
        self._wanted.set()

    def answered(self, answers: CommitAnswers) -> None:
        """The coordinator's answer to a commit (on the loop thread)."""
        refused = {tp: error for tp, (_, error) in answers.items() if error is not None}
        for tp, (offset, error) in answers.items():
            if tp not in self._acked:
                continue  # forgotten meanwhile: another member's now
            if error is None:
                self._confirmed[tp] = max(self._confirmed.get(tp, -1), offset)
            elif self._sent.get(tp) == offset:
                del self._sent[tp]  # kept as acknowledged: the next commit carries it again
            awaited = self._unanswered.get(tp)
            if awaited is not None and awaited <= offset:
                del self._unanswered[tp]
        if refused:
            self.refused += 1
            # After a rebalance the new owner re-reads from the last commit: duplicates, no loss.
            log.warning(
                "commit_failed", error=next(iter(refused.values())), partitions=len(refused)
            )
        elif answers:
            self.commits += 1
        self._wanted.set()

    def forget(self, partitions: Iterable[PartitionKey]) -> None:
        """Drop revoked partitions (after :meth:`flush`): they are another member's now."""
        for tp in partitions:
            for offsets in (self._acked, self._sent, self._confirmed, self._unanswered):
                offsets.pop(tp, None)

    def uncommitted(self, partitions: Collection[PartitionKey]) -> dict[PartitionKey, int]:
        """Acknowledged offsets of ``partitions`` not confirmed committed (a revoke commits
        them)."""
        return {
            tp: o
            for tp, o in self._acked.items()
            if tp in partitions and self._confirmed.get(tp) != o
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
        """Commit whatever was acknowledged and is not confirmed yet (of ``partitions`` only,
        when given: a revoke commits just what it gives up) and wait for the answer."""
        async with self._lock:
            pending = self.uncommitted(self._acked if partitions is None else partitions)
            if not pending:
                return
            try:
                await self._consumer.commit(pending)
            except Exception as exc:
                log.warning("commit_failed", error=str(exc), partitions=len(pending))
                return
            self._sent.update(pending)
            self.answered({tp: (o, None) for tp, o in pending.items()})

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            async with self._lock:
                if self._unanswered and self._clock() - self._sent_at < ANSWER_TIMEOUT_S:
                    continue  # the answer sets _wanted again
                if self._unanswered:
                    log.warning("commit_unanswered", after_s=ANSWER_TIMEOUT_S)
                    self._unanswered = {}
                    self._sent = dict(self._confirmed)  # send whatever is not confirmed
                pending = {tp: o for tp, o in self._acked.items() if self._sent.get(tp) != o}
                if not pending:
                    continue
                self._sent.update(pending)
                self._unanswered = dict(pending)
                self._sent_at = self._clock()
                try:
                    await self._consumer.commit_in_background(pending)
                except Exception as exc:  # not handed over: sent with the next advance
                    log.warning("commit_failed", error=str(exc), partitions=len(pending))
                    self._unanswered = {}
                    for tp, o in pending.items():
                        if self._sent.get(tp) == o:
                            del self._sent[tp]
