"""Kafka -> log: each polled batch appended durably, then its offsets committed.

Per batch: decode every record (bad ones go to the quarantine), append the events (one fsync),
and only then commit the batch's offsets. A crash anywhere before the commit means Kafka
delivers the batch again, and the log skips the events it already holds: nothing is lost and
nothing is written twice.

:class:`AuditConsumer` holds that logic without importing a broker: the FastStream subscriber
(:mod:`services.audit.subscriber`) hands it each polled batch. It pipelines without weakening
the guarantee. A batch is *staged* on the event loop (decode, validate, encode, chain: CPU) and
then *written* in a worker thread (quarantine, segment write, fsync, checkpoint: I/O); the
handler returns as soon as the write has started, so FastStream polls and stages batch N+1
while batch N is written. N+1's write starts only after N's returned; a batch's offsets join the
commit queue only once it is durable. One commit is in flight at a time, and the batches that
became durable meanwhile go out together in the next one (offsets are high-water marks, so it
covers them all): the log never waits for the broker's commit round trip, and every commit
covers fsynced records only.

The commit names its offsets. FastStream's ``KafkaMessage.ack()`` commits the consumer's
position instead, which by then already covers the batch being staged (not durable yet).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import stamina
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from services.audit import metrics
from services.audit.log import AppendResult, AuditLog, PreparedBatch
from services.audit.quarantine import Quarantine, Rejected, decode_events
from shared.events import Event
from shared.logging import get_logger

__all__ = ["AuditConsumer", "Commit"]

log = get_logger(__name__)

Commit = Callable[[dict[TopicPartition, int]], Awaitable[None]]
"""Commits these offsets for the group (``AIOKafkaConsumer.commit``)."""
_Rejected = tuple[str, int, int, bytes | None, bytes | None, Rejected]
"""A record kept out of the chain: topic, partition, offset, key, value, why."""
_Record: TypeAlias = ConsumerRecord[Any, Any]


def _retriable_commit_error(exc: Exception) -> bool:
    """A commit error worth another try: the broker says it may pass (coordinator moving, a
    timeout). A refused commit (rebalance) is not retried: the partition has a new owner."""
    return isinstance(exc, KafkaError) and exc.retriable


_COMMIT_RETRY = stamina.AsyncRetryingCaller(
    attempts=5, timeout=10.0, wait_initial=0.05, wait_max=1.0, wait_jitter=0.2
).on(_retriable_commit_error)
"""Retries one commit of durable offsets; bounded so a lost broker stalls only the commit
(the records are redelivered and skipped as duplicates if it never lands)."""


@dataclass(frozen=True, slots=True)
class _Staged:
    """A polled batch decoded, encoded and chained, not written yet."""

    offsets: dict[TopicPartition, int]
    records: int
    prepared: PreparedBatch
    rejected: list[_Rejected]
    started: float
    commit: Commit


@dataclass(frozen=True, slots=True)
class _Durable:
    """A polled batch once it is on disk: what to commit and what to report."""

    staged: _Staged
    result: AppendResult
    head_seq: int


class AuditConsumer:
    """Appends polled batches to the log and commits each once durable; see the module doc."""

    def __init__(self, audit_log: AuditLog, quarantine: Quarantine) -> None:
        self._log = audit_log
        self._quarantine = quarantine
        self._handling = asyncio.Lock()
        """Held while a batch is handed over; :meth:`drain` takes it to stop the intake."""
        self._io = asyncio.Lock()
        """One thread touches the log at a time (a batch's write or an idle checkpoint)."""
        self._closed = False
        self._writing: asyncio.Task[None] | None = None
        self._commit_task: asyncio.Task[None] | None = None
        self._queued: list[_Durable] = []
        """Durable batches whose offsets are not committed yet."""
        self._progress = asyncio.Condition()
        self.failed = asyncio.Event()
        """Set when a write failed: the log takes no more writes; the process should exit."""
        self.error: BaseException | None = None
        self.batches = 0
        """Batches made durable."""
        self.records_committed = 0
        """Kafka records (events and quarantined ones) whose offsets the group has committed."""

    def announce(self) -> None:
        """Publish what the log already holds: the head and any open sequence gaps."""
        metrics.HEAD_SEQ.set(self._log.head_seq)
        for state in self._log.gaps.snapshot():
            metrics.MISSING.labels(state.source).set(state.missing_count)
            if state.missing_count:
                log.warning(
                    "audit_sequence_gaps_open",
                    source=state.source,
                    missing=state.missing_count,
                    ranges=str(state.missing[:10]),
                )

    async def handle(self, records: Sequence[_Record], commit: Commit) -> None:
        """Take one polled batch: stage it now, write it once the previous write returned, and
        commit it with ``commit`` once durable. Returns when its write has started."""
        async with self._handling:
            if self._closed or self.failed.is_set() or not records:
                return  # not committed: the records come again after a restart
            staged = self._stage(records, commit)
            if self._writing is not None:  # writes go one at a time, in order; a cancelled
                writing, self._writing = self._writing, None  # handler never cuts one short
                await asyncio.shield(writing)
            self._writing = asyncio.create_task(self._write(staged), name="audit-write")

    async def drain(self) -> None:
        """Stop taking batches, then wait until the batch in hand is durable and committed."""
        self._closed = True
        async with self._handling:
            writing, self._writing = self._writing, None
        try:
            if writing is not None:
                await asyncio.wait([writing])
                writing.result()  # a failed write is the error to report
        finally:
            await self._settle()

    async def tick(self) -> bool:
        """With no write in flight, sign the head if a time checkpoint is due (an idle log
        gets no batch to trigger it). Returns whether it signed."""
        if self._io.locked() or self.failed.is_set():
            return False  # the write in flight checks the checkpoint itself
        async with self._io:
            signed = await asyncio.to_thread(self._log.maybe_checkpoint)
        if signed:
            metrics.CHECKPOINTS.inc()
        return signed

    async def wait_until(self, done: Callable[[AuditConsumer], bool]) -> None:
        """Return once ``done(self)`` holds; checked after each durable batch and each commit."""
        async with self._progress:
            await self._progress.wait_for(lambda: done(self) or self.failed.is_set())
        if self.error is not None and not done(self):
            raise self.error

    def _stage(self, records: Sequence[_Record], commit: Commit) -> _Staged:
        """Decode, validate, encode and chain a batch: the CPU half, run on the event loop.

        Running it on the loop rather than in a thread is faster: pure-Python CPU work in a
        thread holds the GIL, and each time the loop wakes for network I/O it then waits for
        the interpreter's switch interval, which starves fetches and commits (docs/audit.md,
        Performance). The loop pauses meanwhile: 15-30 ms for 1,000 events.
        """
        started = time.perf_counter()
        decoded = decode_events([record.value for record in records])
        events = [item for item in decoded if isinstance(item, Event)]
        rejected: list[_Rejected] = []
        if len(events) < len(decoded):
            rejected = [
                (r.topic, r.partition, r.offset, r.key, r.value, item)
                for r, item in zip(records, decoded, strict=True)
                if isinstance(item, Rejected)
            ]
        offsets: dict[TopicPartition, int] = {}
        for record in records:  # in poll order: the last offset of each partition wins
            offsets[TopicPartition(record.topic, record.partition)] = record.offset + 1
        return _Staged(
            offsets=offsets,
            records=len(records),
            prepared=self._log.prepare(events, from_json=True),
            rejected=rejected,
            started=started,
            commit=commit,
        )

    async def _write(self, staged: _Staged) -> None:
        """The I/O half, in a worker thread (the GIL is free while it waits on the disk):
        quarantine the rejected records, write the events, fsync both; then queue the commit."""
        try:
            async with self._io:
                result = await asyncio.to_thread(self._write_files, staged)
        except BaseException as exc:
            self.error = exc
            self.failed.set()
            log.error("audit_write_failed", error=exc.__class__.__name__)
            async with self._progress:
                self._progress.notify_all()
            raise
        metrics.APPEND_SECONDS.observe(time.perf_counter() - staged.started)
        self._report(staged, result)
        self.batches += 1
        self._queued.append(_Durable(staged, result, self._log.head_seq))
        if self._commit_task is not None and self._commit_task.done():
            await self._settle()  # surfaces a commit that failed
        if self._commit_task is None:
            self._commit_task = asyncio.create_task(self._committer(), name="audit-commit")
        async with self._progress:
            self._progress.notify_all()

    def _write_files(self, staged: _Staged) -> AppendResult:
        if staged.rejected:
            self._quarantine.add(staged.rejected)
        return self._log.write(staged.prepared)

    async def _settle(self) -> None:
        """Wait until every queued batch is committed (a commit's errors surface here)."""
        task, self._commit_task = self._commit_task, None
        if task is not None:
            await task

    async def _committer(self) -> None:
        """Commit the queued batches, all that are queued by then in each commit, until none is
        left; then write each batch's one log line."""
        while self._queued:
            batches, self._queued = self._queued, []
            offsets: dict[TopicPartition, int] = {}
            for durable in batches:  # in batch order: later offsets win
                offsets.update(durable.staged.offsets)
            committed = await self._commit(batches[-1].staged.commit, offsets)
            for durable in batches:
                staged, result = durable.staged, durable.result
                if committed:
                    self.records_committed += staged.records
                log.info(
                    "audit_batch",
                    records=staged.records,
                    appended=result.appended,
                    duplicates=result.duplicates,
                    quarantined=len(staged.rejected),
                    head_seq=durable.head_seq,
                    checkpointed=result.checkpointed,
                    committed=committed,
                    batches_in_commit=len(batches),
                    ms=round((time.perf_counter() - staged.started) * 1000, 2),
                )
            async with self._progress:
                self._progress.notify_all()

    @staticmethod
    async def _commit(commit: Commit, offsets: dict[TopicPartition, int]) -> bool:
        """Commit after the write is durable. A rebalance may refuse it: the records come again
        to whoever owns the partition and are skipped as duplicates, so that is only logged."""
        try:
            await _COMMIT_RETRY(commit, offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("audit_commit_refused", error=exc.__class__.__name__)
            return False
        except KafkaError as exc:  # retries spent: as if refused, the records come again
            log.warning("audit_commit_failed", error=exc.__class__.__name__)
            return False
        return True

    def _report(self, staged: _Staged, result: AppendResult) -> None:
        for entry in staged.rejected:
            metrics.QUARANTINED.labels(entry[5].reason).inc()
            log.warning(
                "audit_event_quarantined",
                topic=entry[0],
                partition=entry[1],
                offset=entry[2],
                reason=entry[5].reason,
                detail=entry[5].detail,
            )
        metrics.APPENDED.inc(result.appended)
        metrics.DUPLICATES.inc(result.duplicates)
        metrics.HEAD_SEQ.set(self._log.head_seq)
        if result.checkpointed:
            metrics.CHECKPOINTS.inc()
        for gap in result.gaps:
            metrics.GAPS.labels(gap.source).inc()
            log.warning(
                "audit_sequence_gap",
                source=gap.source,
                first_missing=gap.first,
                last_missing=gap.last,
                missing=gap.size,
            )
        if result.gaps or result.appended:
            for state in self._log.gaps.snapshot():
                metrics.MISSING.labels(state.source).set(state.missing_count)
