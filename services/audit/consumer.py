"""Kafka -> log: consume the audit topic in batches, append durably, then commit.

Per batch: decode every record (bad ones go to the quarantine), append the events (one fsync),
and only then commit the batch's offsets. A crash anywhere before the commit means Kafka
delivers the batch again, and the log skips the event ids it already holds: nothing is lost and
nothing is written twice.

The commit of a batch (a broker round trip) runs while the next batch is fetched, decoded and
appended: it only ever covers records already fsynced, and commits go out one at a time in
batch order, so the guarantee above holds unchanged.
"""

from __future__ import annotations

import asyncio
import time

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
        """Consume until :meth:`stop`; returns once the last batch's commit is done."""
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
        try:
            while not self._stopping.is_set():
                await self._handle_batch()
        finally:
            await self.settle()

    async def step(self) -> int:
        """Handle one polled batch, commit included; returns how many Kafka records it held."""
        count = await self._handle_batch()
        await self.settle()
        return count

    async def settle(self) -> None:
        """Wait for the commit in flight, if any (its errors surface here)."""
        task, self._commit_task = self._commit_task, None
        if task is not None:
            await task

    async def _handle_batch(self) -> int:
        """Poll a batch and make it durable, then start its commit (left running: the next
        batch's work overlaps it) once the previous batch's commit is done."""
        batches = await self._consumer.getmany(
            timeout_ms=self._poll_timeout_ms, max_records=self._max_records
        )
        if not batches:
            await self.settle()
            if await asyncio.to_thread(self._log.maybe_checkpoint):
                metrics.CHECKPOINTS.inc()
            return 0
        started = time.perf_counter()
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        count = sum(len(records) for records in batches.values())
        # Decoding and appending run off the event loop, so the fetcher keeps prefetching and
        # the previous commit completes meanwhile.
        result, rejected = await asyncio.to_thread(self._process, batches)
        for entry in rejected:
            metrics.QUARANTINED.labels(entry[5].reason).inc()
            log.warning(
                "audit_event_quarantined",
                topic=entry[0],
                partition=entry[1],
                offset=entry[2],
                reason=entry[5].reason,
                detail=entry[5].detail,
            )
        metrics.APPEND_SECONDS.observe(time.perf_counter() - started)
        self._observe(result)
        self.batches += 1
        await self.settle()  # commits go out in batch order, one at a time
        summary: dict[str, object] = {
            "records": count,
            "appended": result.appended,
            "duplicates": result.duplicates,
            "quarantined": len(rejected),
            "head_seq": self._log.head_seq,
            "checkpointed": result.checkpointed,
        }
        self._commit_task = asyncio.create_task(
            self._commit_batch(offsets, count, summary, started), name="audit-commit"
        )
        return count

    async def _commit_batch(
        self,
        offsets: dict[TopicPartition, int],
        count: int,
        summary: dict[str, object],
        started: float,
    ) -> None:
        """Commit a durable batch, then write its one log line."""
        committed = await self._commit(offsets)
        if committed:
            self.records_committed += count
        log.info(
            "audit_batch",
            **summary,
            committed=committed,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )

    def _process(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> tuple[AppendResult, list[_Rejected]]:
        """Decode, quarantine the bad ones (fsynced), append the rest (fsynced)."""
        records = [(tp, record) for tp, batch in batches.items() for record in batch]
        events: list[Event] = []
        rejected: list[_Rejected] = []
        for (tp, record), decoded in zip(
            records, decode_events([record.value for _, record in records]), strict=True
        ):
            if isinstance(decoded, Event):
                events.append(decoded)
            else:
                rejected.append(
                    (tp.topic, tp.partition, record.offset, record.key, record.value, decoded)
                )
        if rejected:
            self._quarantine.add(rejected)
        return self._log.append(events), rejected

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
