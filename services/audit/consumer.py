"""Kafka -> log: consume the audit topic in batches, append durably, then commit.

Per batch: decode every record (bad ones go to the quarantine), append the events (one fsync),
and only then commit the batch's offsets. A crash anywhere before the commit means Kafka
delivers the batch again, and the log skips the event ids it already holds: nothing is lost and
nothing is written twice.

:meth:`AuditConsumer.run` pipelines this without weakening it. Each batch is *staged* on the
event loop (decode, validate, encode, chain: CPU) and then *written* in a worker thread
(quarantine, segment write, fsync, checkpoint: I/O). While batch N is written, the loop polls
and stages batch N+1 and commits what is already durable. N+1's write starts only after N's
returned; a batch's offsets join the commit queue only once it is durable. One commit is in
flight at a time, and the batches that became durable meanwhile go out together in the next
one (offsets are high-water marks, so it covers them all): the log never waits for the
broker's commit round trip, and every commit covers fsynced records only.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from services.audit import metrics
from services.audit.log import AppendResult, AuditLog, PreparedBatch
from services.audit.quarantine import Quarantine, Rejected, decode_events
from shared.events import Event
from shared.logging import get_logger

__all__ = ["AuditConsumer"]

log = get_logger(__name__)

_Rejected = tuple[str, int, int, bytes | None, bytes | None, Rejected]
"""A record kept out of the chain: topic, partition, offset, key, value, why."""
_Batches = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


@dataclass(frozen=True, slots=True)
class _Staged:
    """A polled batch decoded, encoded and chained, not written yet."""

    offsets: dict[TopicPartition, int]
    records: int
    prepared: PreparedBatch
    rejected: list[_Rejected]
    started: float


@dataclass(frozen=True, slots=True)
class _Durable:
    """A polled batch once it is on disk: what to commit and what to report."""

    offsets: dict[TopicPartition, int]
    records: int
    result: AppendResult
    rejected: list[_Rejected]
    started: float


class AuditConsumer:
    """Runs the consume -> append -> fsync -> commit loop until :meth:`stop`."""

    def __init__(
        self,
        audit_log: AuditLog,
        consumer: AIOKafkaConsumer,
        quarantine: Quarantine,
        *,
        max_records: int = 1000,
        poll_timeout_ms: int = 500,
    ) -> None:
        self._log = audit_log
        self._consumer = consumer
        self._quarantine = quarantine
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._stopping = asyncio.Event()
        self._commit_task: asyncio.Task[None] | None = None
        self._queued: list[tuple[_Durable, int]] = []
        """Durable batches (with the head seq after each) whose offsets are not committed yet."""
        self.batches = 0
        """Batches made durable."""
        self.records_committed = 0
        """Kafka records (events and quarantined ones) whose offsets the group has committed."""

    def stop(self) -> None:
        self._stopping.set()

    @property
    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    async def run(self) -> None:
        """Consume, pipelined, until :meth:`stop`; returns once the batch in hand is durable and
        committed (records polled but not yet appended are left for the next start)."""
        metrics.HEAD_SEQ.set(self._log.head_seq)
        for state in self._log.gaps.snapshot():  # gaps already in the log stay visible
            metrics.MISSING.labels(state.source).set(state.missing_count)
            if state.missing_count:
                log.warning(
                    "audit_sequence_gaps_open",
                    source=state.source,
                    missing=state.missing_count,
                    ranges=str(state.missing[:10]),
                )
        writing: asyncio.Task[None] | None = None
        try:
            while not self._stopping.is_set():
                # Polling and staging batch N+1 overlap the write and fsync of batch N, whose
                # task also queues N's commit as soon as N is durable (not at the next poll).
                batches = await self._poll()
                staged = self._stage(batches) if batches else None
                if writing is not None:  # writes go one at a time, in order; cancelling the
                    await asyncio.shield(writing)  # loop never cuts one short (see finally)
                    writing = None
                if staged is not None:
                    writing = asyncio.create_task(
                        self._write_then_queue(staged), name="audit-write"
                    )
                else:
                    await self._idle()
        finally:
            try:
                if writing is not None:  # stopped or cancelled mid-write: finish it, commit it
                    await asyncio.wait([writing])
                    writing.result()  # a failed write is the error to report
            finally:
                await self.settle()

    async def step(self) -> int:
        """Poll one batch, append it and commit it (no pipelining); returns how many Kafka
        records it held."""
        batches = await self._poll()
        if not batches:
            await self._idle()
            return 0
        durable = await self._write(self._stage(batches))
        await self._commit_after(durable)
        await self.settle()
        return durable.records

    async def settle(self) -> None:
        """Wait until every queued batch is committed (a commit's errors surface here)."""
        task, self._commit_task = self._commit_task, None
        if task is not None:
            await task

    async def _poll(self) -> _Batches:
        batches: _Batches = await self._consumer.getmany(
            timeout_ms=self._poll_timeout_ms, max_records=self._max_records
        )
        return batches

    async def _idle(self) -> None:
        """No records: finish the commit in flight and sign the head if it is time to."""
        await self.settle()
        if await asyncio.to_thread(self._log.maybe_checkpoint):
            metrics.CHECKPOINTS.inc()

    def _stage(self, batches: _Batches) -> _Staged:
        """Decode, validate, encode and chain a batch: the CPU half, run on the event loop.

        Running it on the loop rather than in a thread is faster: pure-Python CPU work in a
        thread holds the GIL, and each time the loop wakes for network I/O it then waits for
        the interpreter's switch interval, which starves fetches and commits (docs/audit.md,
        Performance). The loop pauses meanwhile: 15-30 ms for 1,000 events.
        """
        started = time.perf_counter()
        records = [record for batch in batches.values() for record in batch]
        decoded = decode_events([record.value for record in records])
        events = [item for item in decoded if isinstance(item, Event)]
        rejected: list[_Rejected] = []
        if len(events) < len(decoded):
            rejected = [
                (r.topic, r.partition, r.offset, r.key, r.value, item)
                for r, item in zip(records, decoded, strict=True)
                if isinstance(item, Rejected)
            ]
        return _Staged(
            offsets={tp: batch[-1].offset + 1 for tp, batch in batches.items() if batch},
            records=len(records),
            prepared=self._log.prepare(events, from_json=True),
            rejected=rejected,
            started=started,
        )

    async def _write(self, staged: _Staged) -> _Durable:
        """The I/O half, in a worker thread (the GIL is free while it waits on the disk):
        quarantine the rejected records, write the events, fsync both; durable on return."""
        result = await asyncio.to_thread(self._write_files, staged)
        metrics.APPEND_SECONDS.observe(time.perf_counter() - staged.started)
        return _Durable(staged.offsets, staged.records, result, staged.rejected, staged.started)

    async def _write_then_queue(self, staged: _Staged) -> None:
        await self._commit_after(await self._write(staged))

    def _write_files(self, staged: _Staged) -> AppendResult:
        if staged.rejected:
            self._quarantine.add(staged.rejected)
        return self._log.write(staged.prepared)

    async def _commit_after(self, durable: _Durable) -> None:
        """Report a durable batch and queue its offsets for the committer."""
        for entry in durable.rejected:
            metrics.QUARANTINED.labels(entry[5].reason).inc()
            log.warning(
                "audit_event_quarantined",
                topic=entry[0],
                partition=entry[1],
                offset=entry[2],
                reason=entry[5].reason,
                detail=entry[5].detail,
            )
        self._observe(durable.result)
        self.batches += 1
        self._queued.append((durable, self._log.head_seq))
        if self._commit_task is not None and self._commit_task.done():
            await self.settle()  # surfaces a commit that failed
        if self._commit_task is None:
            self._commit_task = asyncio.create_task(self._committer(), name="audit-commit")

    async def _committer(self) -> None:
        """Commit the queued batches, all that are queued by then in each commit, until none is
        left; then write each batch's one log line."""
        while self._queued:
            batches, self._queued = self._queued, []
            offsets: dict[TopicPartition, int] = {}
            for durable, _ in batches:  # in batch order: later offsets win
                offsets.update(durable.offsets)
            committed = await self._commit(offsets)
            for durable, head_seq in batches:
                if committed:
                    self.records_committed += durable.records
                result = durable.result
                log.info(
                    "audit_batch",
                    records=durable.records,
                    appended=result.appended,
                    duplicates=result.duplicates,
                    quarantined=len(durable.rejected),
                    head_seq=head_seq,
                    checkpointed=result.checkpointed,
                    committed=committed,
                    batches_in_commit=len(batches),
                    ms=round((time.perf_counter() - durable.started) * 1000, 2),
                )

    async def _commit(self, offsets: dict[TopicPartition, int]) -> bool:
        """Commit after the write is durable. A rebalance may refuse it: the records come again
        to whoever owns the partition and are skipped as duplicates, so that is only logged."""
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("audit_commit_refused", error=exc.__class__.__name__)
            return False
        return True

    def _observe(self, result: AppendResult) -> None:
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
