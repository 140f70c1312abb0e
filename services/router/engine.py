"""The router's hot path: a plain aiokafka consumer loop, one batch at a time.

``getmany`` -> inspect every record (no I/O) -> authenticate each distinct token once ->
evaluate the live ruleset -> ``send`` every output record -> gather the acks -> record the
decisions -> commit the offsets. An offset is committed only after every publish of its batch
and of all earlier batches is acknowledged (``acks=all``), so a crash at any point re-delivers
what was not yet committed: at least once, duplicates only from the uncommitted batches. See
``docs/delivery.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.structs import ConsumerRecord, RecordMetadata, TopicPartition

from services.router.authn import AuthRetryInterrupted, authenticate_batch
from services.router.committer import OffsetCommitter
from services.router.decision_log import DecisionLog
from services.router.decisions import DecisionEncoder, DecisionRecord, DecisionWriter
from services.router.intake import IntakeOptions, inspect_batch
from services.router.metrics import RouterMetrics
from services.router.partitioner import KeyPartitioner
from services.router.plan import BatchPlan, plan_batch
from services.router.ports import RulesetSource
from services.router.publisher import BatchPublisher, Pending
from services.router.topics import TopicProvisioner
from shared.auth import TokenValidator
from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.logging import get_logger
from shared.settings import RouterSettings

__all__ = ["AlertRouter", "BatchResult", "consumer_settings", "producer_settings"]

log = get_logger(__name__)

_STAGES = ("inspect_ms", "auth_ms", "plan_ms", "send_ms", "acks_ms", "decide_ms", "offsets_ms")

Batch = Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]


def producer_settings(settings: RouterSettings) -> dict[str, Any]:
    """The router's producer options on top of ``shared.kafka.make_producer`` (acks=all,
    idempotent): no linger (a batch's records are handed over together anyway) and the
    faster, equivalent murmur2 partitioner."""
    return {"linger_ms": settings.producer_linger_ms, "partitioner": KeyPartitioner()}


def consumer_settings(settings: RouterSettings) -> dict[str, Any]:
    """The router's consumer options on top of ``shared.kafka.make_consumer``."""
    return {
        "max_poll_records": settings.batch_max_records,
        "fetch_max_wait_ms": settings.fetch_max_wait_ms,
    }


class BatchResult:
    """Counts of one routed batch (also the fields of its canonical log line)."""

    __slots__ = ("records", "rejected", "routed_copies", "unrouted")

    def __init__(self) -> None:
        self.records = 0
        self.routed_copies = 0
        self.unrouted = 0
        self.rejected: Counter[str] = Counter()


@dataclass(slots=True)
class _InFlight:
    """A batch whose records were handed to the producer; acks not yet gathered."""

    batch: Batch
    plan: BatchPlan
    pending: Pending
    received_at: datetime
    started: float
    marks: list[float]
    version: int


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, router: AlertRouter) -> None:
        self._router = router

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Finish (publish + commit) the batches in hand before the partitions move on. A batch
        # whose tokens wait for Redis gives way (it is replayed): the rebalance never waits
        # for an outage.
        self._router.control_waiting.set()
        try:
            async with self._router.batch_lock:
                await self._router.drain()
                self._router.release(revoked)
        finally:
            if not self._router.stopping:
                self._router.control_waiting.clear()

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self._router.assigned = set(assigned)
        self._router.metrics.assigned_partitions.set(len(assigned))
        if assigned:
            self._router.partitions_assigned.set()
        log.info(
            "partitions_assigned", partitions=sorted(f"{t.topic}/{t.partition}" for t in assigned)
        )


class AlertRouter:
    """Consumes the alerts topic and routes it; ``run`` until ``stop``."""

    def __init__(
        self,
        settings: RouterSettings,
        *,
        validator: TokenValidator,
        ruleset: RulesetSource,
        decisions: DecisionWriter,
        metrics: RouterMetrics | None = None,
        consumer_options: Mapping[str, Any] | None = None,
        producer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or RouterMetrics()
        self.decisions = decisions
        self.assigned: set[TopicPartition] = set()
        self.partitions_assigned = asyncio.Event()
        """Set once the group has given this router partitions (tests await it)."""
        self.batch_lock = asyncio.Lock()
        self.control_waiting = asyncio.Event()
        """Set while a rebalance or shutdown waits: authentication retries give way to it."""
        self._validator = validator
        self._ruleset = ruleset
        self._consumer_options = dict(consumer_options or {})
        self._producer_options = dict(producer_options or {})
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._publisher: BatchPublisher | None = None
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._positions: dict[TopicPartition, int] = {}
        topics = settings.topics
        self._topics = TopicProvisioner(
            settings.kafka_bootstrap_servers,
            partitions=settings.team_topic_partitions or topics.partitions,
            replication_factor=settings.team_topic_replication_factor or topics.replication_factor,
        )
        self._intake = IntakeOptions(
            severities=settings.severity.table(),
            topic_tokens={t: v.get_secret_value() for t, v in settings.topic_tokens.items()},
            alertmanager=settings.formats.alertmanager,
        )
        self.batches = 0
        self._retries_counted = 0
        self._inflight: asyncio.Queue[_InFlight | None] = asyncio.Queue(settings.pipeline_depth)
        self._rewind: dict[TopicPartition, int] = {}
        self._committer: OffsetCommitter | None = None
        self._decision_log: DecisionLog | None = None

    @property
    def ready(self) -> bool:
        """Partitions are assigned and a ruleset is loaded."""
        return bool(self.assigned) and self._ruleset.loaded

    async def start(self) -> None:
        """Create the fixed topics (and provisioned team topics), then join the group."""
        s = self.settings
        fixed = [s.topics.alerts, *s.topic_tokens, s.topics.unrouted, s.topics.rejected]
        await ensure_topics(
            s.kafka_bootstrap_servers,
            [*fixed, s.topics.decisions] if s.decisions_via_topic else fixed,
            partitions=s.topics.partitions,
            replication_factor=s.topics.replication_factor,
        )
        await self._topics.ensure(s.topics.team_topic(t) for t in s.provision_teams)
        producer_options = {**producer_settings(s), **self._producer_options}
        self._producer = make_producer(s.kafka_bootstrap_servers, **producer_options)
        await self._producer.start()
        self._publisher = BatchPublisher(
            self._producer, self._topics, max_backoff_s=s.publish_retry_max_backoff_s
        )
        if s.decisions_via_topic:
            self._decision_log = DecisionLog(self._producer, s.topics.decisions)
        options = {**consumer_settings(s), **self._consumer_options}
        self._consumer = make_consumer(s.kafka_bootstrap_servers, group_id=s.group_id, **options)
        self._consumer.subscribe([s.topics.alerts, *s.topic_tokens], listener=_Rebalance(self))
        await self._consumer.start()
        self.decisions.start()

    async def run(self) -> None:
        """Route batches until :meth:`stop`; every batch in hand is finished first.

        Two stages overlap: while the acks of batch N are awaited (:meth:`_settle_loop`), batch
        N+1 is already inspected, planned and handed to the producer. Acks are settled in batch
        order and only then are offsets handed to the background committer.
        """
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("call start() before run()")
        self._committer = OffsetCommitter(consumer)
        self._committer.start()
        settler = asyncio.create_task(self._settle_loop(consumer), name="router-settle")
        try:
            while not self._stopping.is_set():
                if settler.done():
                    break  # the settle stage died: stop rather than route without commits
                if self._rewind:
                    await self._apply_rewind(consumer)
                    continue
                if not self._ruleset.loaded:
                    await self._wait(0.05)  # no ruleset yet: routing now would misroute
                    continue
                batch = await consumer.getmany(
                    timeout_ms=self.settings.batch_timeout_ms,
                    max_records=self.settings.batch_max_records,
                )
                if not batch:
                    self.metrics.decisions_buffered.set(self.decisions.buffered)
                    continue
                async with self.batch_lock:
                    await self._dispatch_or_rewind(batch)
        finally:
            if not settler.done():
                await self._inflight.put(None)  # the settle stage finishes what is queued
            with contextlib.suppress(asyncio.CancelledError):
                await settler
            await self._committer.stop()  # the last acknowledged offsets are committed
            self._stopped.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def stop(self) -> None:
        """Stop consuming, drain the batches in hand (bounded), close the clients."""
        self._stopping.set()
        self.control_waiting.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), timeout=self.settings.shutdown_drain_s)
        await self.decisions.stop()
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()

    async def drain(self) -> None:
        """Wait until every dispatched batch is acknowledged and committed (or rewound)."""
        await self._inflight.join()
        if self._committer is not None:
            await self._committer.flush()

    def release(self, revoked: Iterable[TopicPartition]) -> None:
        """Forget partitions taken away by a rebalance (after :meth:`drain`)."""
        revoked = set(revoked)
        self.assigned -= revoked
        if self._committer is not None:
            self._committer.forget(revoked)

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _dispatch_or_rewind(self, batch: Batch) -> None:
        try:
            inflight = await self._dispatch(batch)
        except asyncio.CancelledError:
            raise
        except AuthRetryInterrupted as cut:  # a rebalance or shutdown first; replay it after
            log.info("batch_deferred_for_control", reason=str(cut), partitions=len(batch))
            self._mark_rewind(batch)
            return
        except Exception:  # a bug or an unforeseen outage: replay the batch, never skip it
            log.exception("batch_failed_rewinding", partitions=len(batch))
            self._mark_rewind(batch)
            await self._wait(1.0)
            return
        await self._inflight.put(inflight)  # bounded: at most pipeline_depth batches in flight

    async def _dispatch(self, batch: Batch) -> _InFlight:
        """Stage 1: inspect, authenticate, evaluate, and hand every record to the producer."""
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        publisher = self._publisher
        if publisher is None:
            raise RuntimeError("call start() before routing")
        inbounds = inspect_batch(itertools.chain.from_iterable(batch.values()), self._intake)
        tokens = [i.token for i in inbounds if i.token is not None and i.rejection is None]
        marks = [time.perf_counter()]
        auth = await authenticate_batch(
            self._validator,
            tokens,
            max_backoff_s=self.settings.publish_retry_max_backoff_s,
            interrupted=self.control_waiting,
        )
        ruleset = self._ruleset.current
        marks.append(time.perf_counter())
        plan = plan_batch(inbounds, auth, ruleset, self.settings.topics)
        marks.append(time.perf_counter())
        pending = await publisher.enqueue(plan.messages)
        marks.append(time.perf_counter())
        return _InFlight(batch, plan, pending, received_at, started, marks, ruleset.version)

    async def _settle_loop(self, consumer: AIOKafkaConsumer) -> None:
        """Stage 2, in batch order: gather acks, record decisions, commit offsets.

        Batches that queued up while the previous commit was in flight are settled together
        and committed with one request: under load, commits do not become the bottleneck.
        """
        finished = False
        while not finished:
            group: list[_InFlight] = []
            item = await self._inflight.get()
            taken = 1
            while item is not None:
                group.append(item)
                if self._inflight.empty():
                    break
                item = self._inflight.get_nowait()
                taken += 1
            finished = item is None
            try:
                if self._rewind:  # an earlier batch failed: replay these too
                    for inflight in group:
                        self._mark_rewind(inflight.batch)
                elif group:
                    await self._settle_group(consumer, group)
            except asyncio.CancelledError:
                raise
            except Exception:  # replay from these batches on; never commit past them
                log.exception("batch_failed_rewinding", batches=len(group))
                for inflight in group:
                    self._mark_rewind(inflight.batch)
            finally:
                for _ in range(taken):
                    self._inflight.task_done()

    async def _settle_group(self, consumer: AIOKafkaConsumer, group: list[_InFlight]) -> None:
        publisher = self._publisher
        assert publisher is not None  # set by start(), before any dispatch
        offsets: dict[TopicPartition, int] = {}
        decision_acks: list[asyncio.Future[Any]] = []
        for inflight in group:
            plan = inflight.plan
            metadata = await publisher.settle(plan.messages, inflight.pending)
            inflight.marks.append(time.perf_counter())
            routed_at = datetime.now(UTC)
            decided = _decisions(plan, metadata, inflight.received_at, routed_at)
            if self._decision_log is not None:  # part of the at-least-once unit
                decision_acks.extend(await self._decision_log.send(decided))
            else:  # written in the background: routing does not wait for Redis
                self.decisions.add(decided)
            inflight.marks.append(time.perf_counter())
            for tp, records in inflight.batch.items():
                if records:
                    offsets[tp] = max(offsets.get(tp, 0), records[-1].offset + 1)
        if decision_acks:  # acknowledged before the offsets move (a failure replays the group)
            await DecisionLog.settle(decision_acks)
        assert self._committer is not None  # created by run()
        self._committer.advance(offsets)  # committed in the background, latest wins
        committed = time.perf_counter()
        for inflight in group:
            marks = [*inflight.marks, committed]
            stages = {
                name: round((b - a) * 1000, 2)
                for name, a, b in zip(_STAGES, [inflight.started, *marks], marks, strict=False)
            }
            count = sum(len(r) for r in inflight.batch.values())
            self._account(inflight.plan, count, inflight.version, inflight.started, stages)
        self._update_lag(consumer, offsets)

    def _mark_rewind(self, batch: Batch) -> None:
        for tp, records in batch.items():
            if records:
                first = records[0].offset
                self._rewind[tp] = min(first, self._rewind.get(tp, first))

    async def _apply_rewind(self, consumer: AIOKafkaConsumer) -> None:
        """Seek back to the first record of the oldest failed batch, once nothing is in flight."""
        async with self.batch_lock:
            await self.drain()
            rewind, self._rewind = self._rewind, {}
            assigned = consumer.assignment()
            for tp, offset in rewind.items():
                if tp in assigned:
                    consumer.seek(tp, offset)
            log.warning("rewound", partitions=len(rewind))

    def _account(
        self,
        plan: BatchPlan,
        records: int,
        version: int,
        started: float,
        stages: dict[str, float],
    ) -> BatchResult:
        m = self.metrics
        result = BatchResult()
        result.records = records
        m.alerts_in.inc(records)
        teams = plan.copies_by_team
        for team, count in teams.items():
            m.routed.labels(team=team).inc(count)
        result.routed_copies = sum(teams.values())
        result.unrouted = plan.unrouted
        m.unrouted.inc(result.unrouted)
        for _, rejection in plan.rejected:
            result.rejected[rejection.reason] += 1
        for reason, count in result.rejected.items():
            m.rejected.labels(reason=reason).inc(count)
        elapsed = time.perf_counter() - started
        m.batch_seconds.observe(elapsed)
        m.batch_size.observe(records)
        m.ruleset_version.set(version)
        if self._publisher is not None:
            m.publish_retries.inc(self._publisher.retries - self._retries_counted)
            self._retries_counted = self._publisher.retries
        m.decisions_buffered.set(self.decisions.buffered)
        self.batches += 1
        log.info(
            "batch_routed",
            records=records,
            alerts=len(plan.accepted),
            routed_copies=result.routed_copies,
            unrouted=result.unrouted,
            rejected=sum(result.rejected.values()),
            reject_reasons=dict(result.rejected),
            teams=len(teams),
            ruleset_version=version,
            decisions_buffered=self.decisions.buffered,
            duration_ms=round(elapsed * 1000, 2),
            **stages,
        )
        return result

    def _update_lag(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
        self._positions.update(offsets)
        lag = 0
        for tp in self.assigned:
            high = consumer.highwater(tp)
            position = self._positions.get(tp)
            if high is not None and position is not None:
                lag += max(high - position, 0)
        self.metrics.lag.set(lag)


def _decisions(
    plan: BatchPlan,
    metadata: Sequence[RecordMetadata],
    received_at: datetime,
    routed_at: datetime,
) -> list[DecisionRecord]:
    record = DecisionEncoder(received_at, routed_at, int(received_at.timestamp() * 1000)).record
    records = []
    for planned in plan.accepted:
        alert = planned.alert
        inbound = planned.inbound
        placed = [metadata[i] for i in planned.message_indexes]
        records.append(
            record(
                alert.id,
                "routed" if planned.teams else "unrouted",
                alert.status,  # a StrEnum: encoded as its value
                alert.severity,
                alert.dedup_key,
                planned.teams,
                planned.rule_ids,
                planned.ruleset_version,
                planned.fallback,
                planned.principal.token_id,
                (inbound.topic, inbound.partition, inbound.offset),
                [(m.topic, m.partition, m.offset) for m in placed],
                summary=alert.summary,
                service=alert.service,
            )
        )
    return records
