"""Kafka -> log: consume the audit topic in batches, append durably, then commit.

Per batch: decode every record (bad ones go to the quarantine), append the events (one fsync),
and only then commit the batch's offsets. A crash anywhere before the commit means Kafka
delivers the batch again, and the log skips the event ids it already holds: nothing is lost and
nothing is written twice.

:meth:`AuditConsumer.run` pipelines this without weakening it. While batch N is decoded,
appended and fsynced in a worker thread, the event loop polls batch N+1 and commits batch N-1.
N+1 is appended only after N's append returned, and N's commit is sent only once N is durable
and N-1's commit has finished, so every commit covers fsynced records and commits go out in
batch order.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from services.audit import metrics
from services.audit.log import AppendResult, AuditLog
from services.audit.quarantine import Quarantine, Rejected, decode_events
from shared.events import Event
from shared.logging import get_logger

__all__ = ["AuditConsumer"]

log = get_logger(__name__)

_Rejected = tuple[str, int, int, bytes | None, bytes | None, Rejected]
"""A record kept out of the chain: topic, partition, offset, key, value, why."""
_Batches = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


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
        appending: asyncio.Task[_Durable] | None = None
        try:
            while not self._stopping.is_set():
                batches = await self._poll()  # meanwhile the previous batch is being appended
                durable = None
                if appending is not None:
                    task, appending = appending, None
                    durable = await task
                if batches:  # the log is free: the next append starts at once ...
                    appending = asyncio.create_task(self._append(batches), name="audit-append")
                if durable is not None:  # ... while the previous batch's commit waits its turn
                    await self._commit_after(durable)
                if not batches:
                    await self._idle()
        finally:
            if appending is not None:  # stopped or cancelled mid-append: finish it, commit it
                await self._commit_after(await appending)
            await self.settle()

    async def step(self) -> int:
        """Poll one batch, append it and commit it (no pipelining); returns how many Kafka
        records it held."""
        batches = await self._poll()
        if not batches:
            await self._idle()
            return 0
        durable = await self._append(batches)
        await self._commit_after(durable)
        await self.settle()
        return durable.records

    async def settle(self) -> None:
        """Wait for the commit in flight, if any (its errors surface here)."""
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

    async def _append(self, batches: _Batches) -> _Durable:
        """Decode and append a batch in a worker thread (the event loop keeps polling and
        committing meanwhile); returns once it is fsynced."""
        started = time.perf_counter()
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        count = sum(len(records) for records in batches.values())
        result, rejected = await asyncio.to_thread(self._process, batches)
        metrics.APPEND_SECONDS.observe(time.perf_counter() - started)
        return _Durable(offsets, count, result, rejected, started)

    async def _commit_after(self, durable: _Durable) -> None:
        """Report a durable batch, wait for the previous commit, then start this one's."""
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
        await self.settle()  # commits go out in batch order, one at a time
        self._commit_task = asyncio.create_task(
            self._commit_batch(durable, head_seq=self._log.head_seq), name="audit-commit"
        )

    async def _commit_batch(self, durable: _Durable, *, head_seq: int) -> None:
        """Commit a durable batch, then write its one log line."""
        committed = await self._commit(durable.offsets)
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
            ms=round((time.perf_counter() - durable.started) * 1000, 2),
        )

    def _process(self, batches: _Batches) -> tuple[AppendResult, list[_Rejected]]:
        """Decode, quarantine the bad ones (fsynced), append the rest (fsynced)."""
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
            self._quarantine.add(rejected)
        return self._log.append(events, from_json=True), rejected

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
