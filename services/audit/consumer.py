"""Kafka -> log: consume the audit topic in batches, append durably, then commit.

Per batch: decode each record (bad ones go to the quarantine), append the events (one fsync),
and only then commit the batch's offsets. A crash anywhere before the commit means Kafka
delivers the batch again, and the log skips the event ids it already holds: nothing is lost and
nothing is written twice.
"""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from services.audit import metrics
from services.audit.log import AppendResult, AuditLog
from services.audit.quarantine import Quarantine, Rejected, decode_event
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
        self.batches = 0

    def stop(self) -> None:
        self._stopping.set()

    @property
    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    async def run(self) -> None:
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
        while not self._stopping.is_set():
            await self.step()

    async def step(self) -> int:
        """Handle one polled batch; returns how many Kafka records it held."""
        batches = await self._consumer.getmany(
            timeout_ms=self._poll_timeout_ms, max_records=self._max_records
        )
        if not batches:
            if await asyncio.to_thread(self._log.maybe_checkpoint):
                metrics.CHECKPOINTS.inc()
            return 0
        started = time.perf_counter()
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        # Decoding and appending run off the event loop, so the fetcher keeps prefetching.
        result, rejected = await asyncio.to_thread(self._process, batches)
        count = sum(len(records) for records in batches.values())
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
        committed = await self._commit(offsets)
        self._observe(result)
        self.batches += 1
        log.info(
            "audit_batch",
            records=count,
            appended=result.appended,
            duplicates=result.duplicates,
            quarantined=len(rejected),
            head_seq=self._log.head_seq,
            checkpointed=result.checkpointed,
            committed=committed,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        return count

    def _process(
        self, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> tuple[AppendResult, list[_Rejected]]:
        """Decode, quarantine the bad ones (fsynced), append the rest (fsynced)."""
        events: list[Event] = []
        rejected: list[_Rejected] = []
        for tp, records in batches.items():
            for record in records:
                decoded = decode_event(record.value)
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
