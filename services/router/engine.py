"""The router's hot path: a librdkafka (confluent-kafka) consumer loop, one batch at a time.

fetch -> inspect every record (no I/O) -> authenticate each distinct token once -> evaluate the
live ruleset -> ``produce`` every output record -> gather the delivery reports -> record the
decisions -> commit the offsets. An offset is committed only after every copy of its batch and
of all earlier batches is acknowledged (``acks=all``), so a crash at any point re-delivers what
was not yet committed: at least once, duplicates only from the uncommitted batches.

With ``ALERTYARD_ROUTER_EXACTLY_ONCE`` the copies, unrouted, rejected and decision records and
the consumed offsets go into one Kafka transaction per settled group of batches; an abort
rewinds to the committed position. See ``docs/delivery.md``.

The blocking librdkafka calls run on their own threads (``shared/kafka_native.py``): the event
loop that also serves the HTTP API never waits on a fetch, a flush or a commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message

from services.router.authn import AuthRetryInterrupted, authenticate_batch
from services.router.budget import InFlightBudget
from services.router.committer import OffsetCommitter
from services.router.decision_batch import DecisionBatch
from services.router.decision_log import DecisionLog
from services.router.decisions import DecisionEncoder, DecisionRecord, DecisionWriter
from services.router.intake import IntakeOptions, inspect_batch
from services.router.metrics import RouterMetrics
from services.router.plan import BatchPlan, plan_batch
from services.router.ports import RulesetSource
from services.router.publisher import BatchPublisher, Pending
from services.router.summary import RoutingSummary
from services.router.topics import TopicProvisioner
from shared.auth import TokenValidator
from shared.kafka import ensure_topics
from shared.kafka_native import (
    Delivered,
    DeliveryBatch,
    NativeConsumer,
    NativeProducer,
    PartitionKey,
    RebalanceHandler,
    consumer_config,
    producer_config,
)
from shared.logging import get_logger
from shared.settings import RouterSettings

__all__ = [
    "AlertRouter",
    "BatchResult",
    "consumer_settings",
    "producer_settings",
    "transactional_id",
]

log = get_logger(__name__)

_STUCK_S = 2.0
"""A dispatch this slow is waiting (for Redis): the fetch thread keeps polling meanwhile."""

_STAGES = ("inspect_ms", "auth_ms", "plan_ms", "send_ms", "acks_ms", "decide_ms", "offsets_ms")

Batch = Mapping[PartitionKey, Sequence[Message]]


def transactional_id(settings: RouterSettings) -> str:
    """This instance's ``transactional.id``: stable across restarts of the same instance, so
    a restarted router fences its predecessor and aborts the transaction it left open."""
    return settings.transactional_id or f"{settings.group_id}-{socket.gethostname()}"


def producer_settings(settings: RouterSettings) -> dict[str, Any]:
    """The router's librdkafka producer settings (``shared.kafka_native.producer_config``)."""
    return producer_config(
        settings.kafka_bootstrap_servers,
        linger_ms=settings.producer_linger_ms,
        transactional_id=transactional_id(settings) if settings.exactly_once else None,
        **{"client.id": f"{settings.group_id}-producer"},
    )


def consumer_settings(settings: RouterSettings) -> dict[str, Any]:
    """The router's librdkafka consumer settings (``shared.kafka_native.consumer_config``)."""
    return consumer_config(
        settings.kafka_bootstrap_servers,
        group_id=settings.group_id,
        group_protocol=settings.group_protocol,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        **{"client.id": f"{settings.group_id}-consumer"},
    )


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

    seq: int
    batch: Batch
    plan: BatchPlan
    pending: Pending
    received_at: datetime
    started: float
    marks: list[float]
    version: int
    records: int


class AlertRouter(RebalanceHandler):
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
        self.assigned: set[PartitionKey] = set()
        self.partitions_assigned = asyncio.Event()
        """Set once the group has given this router partitions (tests await it)."""
        self.batch_lock = asyncio.Lock()
        self.control_waiting = asyncio.Event()
        """Set while a rebalance or shutdown waits: authentication retries give way to it."""
        self._validator = validator
        self._ruleset = ruleset
        self._consumer_options = dict(consumer_options or {})
        self._producer_options = dict(producer_options or {})
        self._consumer: NativeConsumer | None = None
        self._producer: NativeProducer | None = None
        self._publisher: BatchPublisher | None = None
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._positions: dict[PartitionKey, int] = {}
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
        self._summary = RoutingSummary()
        self.revocations: list[int] = []
        """Partitions given up per revoke (tests check a rebalance was incremental)."""
        self._retries_counted = 0
        # Unbounded queue, bounded by the budget: a batch is queued in the same step as its
        # records are produced, so (exactly once) no commit can slip between the two.
        self._inflight: asyncio.Queue[_InFlight | None] = asyncio.Queue()
        self._budget = InFlightBudget(settings.pipeline_depth * settings.batch_max_records)
        self._seq = itertools.count(1)
        self._last_seq: dict[PartitionKey, int] = {}
        self._settled_seq = 0
        self._settled = asyncio.Condition()
        self._settle_dead = False
        self._rewind: dict[PartitionKey, int] = {}
        self._committer: OffsetCommitter | None = None
        self._decision_log: DecisionLog | None = None
        self._exactly_once = settings.exactly_once
        self._txn_lock = asyncio.Lock()
        self._txn_open = False
        self._prefetch: asyncio.Task[dict[PartitionKey, list[Message]]] | None = None
        self._idle = asyncio.Event()
        """Clear while a batch is being dispatched (see :meth:`_fetch_ahead`)."""
        self._idle.set()

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
        self._producer = NativeProducer({**producer_settings(s), **self._producer_options})
        if self._exactly_once:  # fences an earlier incarnation, aborts what it left open
            await self._producer.init_transactions()
            log.info("transactions_initialised", transactional_id=transactional_id(s))
        self._publisher = BatchPublisher(
            self._producer,
            self._topics,
            max_backoff_s=s.publish_retry_max_backoff_s,
            retry_failed=not self._exactly_once,  # there a failure aborts and replays instead
        )
        if s.decisions_via_topic:
            self._decision_log = DecisionLog(self._producer, s.topics.decisions)
        self._consumer = NativeConsumer(
            {**consumer_settings(s), **self._consumer_options},
            [s.topics.alerts, *s.topic_tokens],
            self,
            callback_timeout_s=s.shutdown_drain_s + 30,
        )
        await self._consumer.start()
        self.decisions.start()

    async def run(self) -> None:
        """Route batches until :meth:`stop`; every batch in hand is finished first.

        Three stages overlap: the fetch thread reads batch N+2 while batch N+1 is inspected,
        planned and produced on the loop, while the acks of batch N are awaited
        (:meth:`_settle_loop`). Acks are settled in batch order and only then are offsets
        handed to the background committer (or, exactly once, sent in the transaction).
        """
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("call start() before run()")
        self._committer = OffsetCommitter(consumer)
        consumer.on_commit_answers(self._committer.answered)
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
                if self._prefetch is None:
                    self._prefetch = self._fetch(consumer)
                batch = await self._prefetch
                self._prefetch = None
                if not batch:
                    self.metrics.decisions_buffered.set(self.decisions.buffered)
                    continue
                self._idle.clear()
                if not self._stopping.is_set():
                    self._prefetch = self._fetch(consumer)  # reads on while this is routed
                try:
                    async with self.batch_lock:
                        await self._dispatch_or_rewind(batch)
                finally:
                    self._idle.set()
        finally:
            await self._discard_prefetch()  # not dispatched, not committed: read again later
            if not settler.done():
                self._inflight.put_nowait(None)  # the settle stage finishes what is queued
            with contextlib.suppress(asyncio.CancelledError):
                await settler
            await self._committer.stop()  # the last acknowledged offsets are committed
            self._log_summary(time.perf_counter())
            self._stopped.set()

    def _fetch(self, consumer: NativeConsumer) -> asyncio.Task[dict[PartitionKey, list[Message]]]:
        s = self.settings
        reading = consumer.fetch(s.batch_max_records, s.batch_timeout_ms / 1000)  # starts now
        return asyncio.create_task(self._fetch_ahead(consumer, reading), name="router-fetch")

    async def _fetch_ahead(
        self, consumer: NativeConsumer, reading: asyncio.Future[dict[PartitionKey, list[Message]]]
    ) -> dict[PartitionKey, list[Message]]:
        """The next batch, read while the current one is routed. librdkafka runs rebalance
        callbacks only inside a fetch, so when routing is stuck (a token check waiting for
        Redis) this keeps polling, partitions paused, until it is done: a rebalance or a
        shutdown then interrupts the wait instead of waiting for it (records polled meanwhile
        join this batch; see ``NativeConsumer.keep_polling``)."""
        batch = await reading
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=_STUCK_S)
        if self._idle.is_set():
            return batch
        log.info("fetch_paused_while_routing_waits", after_s=_STUCK_S)
        until = threading.Event()
        polling = asyncio.ensure_future(consumer.keep_polling(until))
        try:
            await self._idle.wait()
        finally:
            until.set()
            strays = await polling
        for tp, records in strays.items():
            batch.setdefault(tp, []).extend(records)
        return batch

    async def _discard_prefetch(self) -> None:
        """Drop a fetched batch that will not be dispatched; seek back so it is read again."""
        task, self._prefetch = self._prefetch, None
        if task is None:
            return
        try:
            batch = await task
        except Exception as exc:  # closing: nothing was dispatched from it
            log.warning("fetch_failed", error=repr(exc))
            return
        self._mark_rewind(batch)

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
            await self._consumer.close()  # the revoke callback finds nothing left in hand
        if self._producer is not None:
            if self._txn_open:
                with contextlib.suppress(Exception):
                    await self._producer.abort_transaction()
            await self._producer.close()

    async def drain(self) -> None:
        """Wait until every dispatched batch is acknowledged and committed (or rewound)."""
        await self._inflight.join()
        if self._committer is not None:
            await self._committer.flush()

    # Rebalance callbacks: librdkafka calls them on the fetch thread, which waits for these
    # coroutines on the loop before it moves the partitions (shared/kafka_native.py).

    async def on_assigned(self, partitions: list[PartitionKey]) -> None:
        self.assigned |= set(partitions)
        self.metrics.assigned_partitions.set(len(self.assigned))
        if self.assigned:
            self.partitions_assigned.set()
        log.info(
            "partitions_assigned",
            partitions=sorted(f"{t}/{p}" for t, p in partitions),
            total=len(self.assigned),
        )

    async def on_revoked(self, partitions: list[PartitionKey]) -> Mapping[PartitionKey, int]:
        """Finish (publish + commit) the batches that hold these partitions, commit only these
        partitions, then let them go; the other partitions stay assigned and keep routing. A
        batch whose tokens wait for Redis gives way (it is replayed): a rebalance never waits
        for an outage."""
        if not partitions:
            return {}
        gone = set(partitions)
        self.control_waiting.set()
        try:
            async with self.batch_lock:
                target = max((self._last_seq.get(tp, 0) for tp in gone), default=0)
                async with self._settled:
                    await self._settled.wait_for(
                        lambda: self._settled_seq >= target or self._settle_dead
                    )
                # Committed by the fetch thread before librdkafka lets them go.
                offsets = self._committer.uncommitted(gone) if self._committer else {}
                self.release(gone)
        finally:
            if not self._stopping.is_set():
                self.control_waiting.clear()
        self.revocations.append(len(gone))
        log.info(
            "partitions_revoked",
            partitions=sorted(f"{t}/{p}" for t, p in gone),
            kept=len(self.assigned),
            committing=len(offsets),
        )
        return offsets

    async def on_lost(self, partitions: list[PartitionKey]) -> None:
        """Gone without a revoke (the session expired): another member re-reads from the last
        commit; nothing of them is committed from here any more."""
        self.release(partitions)
        log.warning("partitions_lost", partitions=sorted(f"{t}/{p}" for t, p in partitions))

    def release(self, revoked: Iterable[PartitionKey]) -> None:
        """Forget partitions taken away by a rebalance (after their batches settled)."""
        revoked = set(revoked)
        self.assigned -= revoked
        self.metrics.assigned_partitions.set(len(self.assigned))
        for tp in revoked:
            self._rewind.pop(tp, None)  # the next owner starts from the committed offset
            self._last_seq.pop(tp, None)
        if self._committer is not None:
            self._committer.forget(revoked)

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _dispatch_or_rewind(self, batch: Batch) -> None:
        records = _records(batch)
        await self._budget.acquire(records)  # pipeline_depth full batches' worth in flight
        try:
            inflight = await self._dispatch(batch, records)
        except asyncio.CancelledError:
            self._budget.release(records)
            raise
        except AuthRetryInterrupted as cut:  # a rebalance or shutdown first; replay it after
            self._budget.release(records)
            log.info("batch_deferred_for_control", reason=str(cut), partitions=len(batch))
            self._mark_rewind(batch)
            return
        except Exception:  # a bug or an unforeseen outage: replay the batch, never skip it
            self._budget.release(records)
            log.exception("batch_failed_rewinding", partitions=len(batch))
            self._mark_rewind(batch)
            await self._wait(1.0)
            return
        for tp in batch:
            self._last_seq[tp] = inflight.seq

    async def _dispatch(self, batch: Batch, records: int) -> _InFlight:
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
        async with self._txn_lock:  # exactly once: never between a commit and the next begin
            if self._exactly_once and not self._txn_open:
                assert self._producer is not None  # set by start()
                self._producer.begin_transaction()
                self._txn_open = True
            pending = await publisher.enqueue(plan.messages)
            marks.append(time.perf_counter())
            inflight = _InFlight(
                next(self._seq),
                batch,
                plan,
                pending,
                received_at,
                started,
                marks,
                ruleset.version,
                records,
            )
            self._inflight.put_nowait(inflight)
        return inflight

    async def _settle_loop(self, consumer: NativeConsumer) -> None:
        """Stage 2, in batch order: gather acks, record decisions, commit offsets.

        Batches that queued up while the previous commit was in flight are settled together
        and committed with one request: under load, commits do not become the bottleneck.
        Exactly once, a group is every batch of the open transaction.
        """
        finished = False
        try:
            while not finished:
                group: list[_InFlight] = []
                item = await self._inflight.get()
                taken = 1
                async with self._txn_lock if self._exactly_once else contextlib.nullcontext():
                    while item is not None:
                        group.append(item)
                        if self._inflight.empty():
                            break
                        item = self._inflight.get_nowait()
                        taken += 1
                    finished = item is None
                    try:
                        if self._rewind:  # an earlier batch failed: replay these too
                            await self._give_up(group)
                        elif group:
                            await self._settle_group(consumer, group)
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # replay from these batches on; never commit past them
                        log.exception("batch_failed_rewinding", batches=len(group))
                        await self._give_up(group)
                    finally:
                        for _ in range(taken):
                            self._inflight.task_done()
                        for inflight in group:
                            self._budget.release(inflight.records)
                if group:
                    async with self._settled:
                        self._settled_seq = group[-1].seq
                        self._settled.notify_all()
        finally:
            async with self._settled:
                self._settle_dead = True
                self._settled.notify_all()

    async def _give_up(self, group: list[_InFlight]) -> None:
        """Replay these batches (exactly once: after aborting their transaction)."""
        for inflight in group:
            self._mark_rewind(inflight.batch)
        if self._exactly_once and self._txn_open:
            await self._abort()

    async def _abort(self) -> None:
        assert self._producer is not None  # set by start()
        self._txn_open = False
        await self._producer.abort_transaction()  # a fatal error (fenced) stops the router
        log.warning("transaction_aborted")

    async def _settle_group(self, consumer: NativeConsumer, group: list[_InFlight]) -> None:
        publisher = self._publisher
        assert publisher is not None  # set by start(), before any dispatch
        offsets: dict[PartitionKey, int] = {}
        decision_acks: list[DeliveryBatch] = []
        for inflight in group:
            plan = inflight.plan
            placed = await publisher.settle(plan.messages, inflight.pending)
            inflight.marks.append(time.perf_counter())
            routed_at = datetime.now(UTC)
            if self._decision_log is not None:  # part of the at-least-once unit
                # Compact rows: the indexer builds the bodies, off this loop.
                batch = _decision_batch(plan, placed, inflight.received_at, routed_at)
                decision_acks.append(self._decision_log.send_batch(batch))
            else:  # written in the background: routing does not wait for Redis
                self.decisions.add(_decisions(plan, placed, inflight.received_at, routed_at))
            inflight.marks.append(time.perf_counter())
            for tp, records in inflight.batch.items():
                if records and tp in self.assigned:  # a lost partition is another's now
                    offsets[tp] = max(offsets.get(tp, 0), (records[-1].offset() or 0) + 1)
        if decision_acks:  # acknowledged before the offsets move (a failure replays the group)
            await DecisionLog.settle(decision_acks)
        if self._exactly_once:
            await self._commit_transaction(consumer, offsets)
        else:
            assert self._committer is not None  # created by run()
            self._committer.advance(offsets)  # committed in the background, latest wins
        committed = time.perf_counter()
        for inflight in group:
            marks = [*inflight.marks, committed]
            stages = {
                name: round((b - a) * 1000, 2)
                for name, a, b in zip(_STAGES, [inflight.started, *marks], marks, strict=False)
            }
            self._account(
                inflight.plan, inflight.records, inflight.version, inflight.started, stages
            )
        self._update_lag(consumer, offsets)

    async def _commit_transaction(
        self, consumer: NativeConsumer, offsets: Mapping[PartitionKey, int]
    ) -> None:
        """The consumed offsets join the transaction; then it commits (all or nothing)."""
        producer = self._producer
        assert producer is not None  # set by start()
        if offsets:
            metadata = await consumer.group_metadata()
            await producer.send_offsets_to_transaction(offsets, metadata)
        await producer.commit_transaction()
        self._txn_open = False

    def _mark_rewind(self, batch: Batch) -> None:
        for tp, records in batch.items():
            if records:
                first = records[0].offset() or 0
                self._rewind[tp] = min(first, self._rewind.get(tp, first))

    async def _apply_rewind(self, consumer: NativeConsumer) -> None:
        """Seek back to the first record of the oldest failed batch, once nothing is in flight
        (exactly once: after aborting what is open, so the replay starts from the committed
        position)."""
        await self._discard_prefetch()  # before the lock: the fetch may wait in a revoke
        async with self.batch_lock:
            await self.drain()
            if self._exactly_once and self._txn_open:
                await self._abort()
            rewind, self._rewind = self._rewind, {}
            await consumer.seek({tp: o for tp, o in rewind.items() if tp in self.assigned})
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
        log.debug(
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
        now = started + elapsed
        self._summary.add(
            records=records,
            alerts=len(plan.accepted),
            routed_copies=result.routed_copies,
            unrouted=result.unrouted,
            rejected=result.rejected,
            duration_ms=elapsed * 1000,
            stages=stages,
            ruleset_version=version,
            now=now,
        )
        if self._summary.due(now):
            self._log_summary(now)
        return result

    def _log_summary(self, now: float) -> None:
        fields = self._summary.take(now)
        if fields is not None:
            log.info(
                "routing_summary",
                decisions_buffered=self.decisions.buffered,
                **fields,
            )

    def _update_lag(self, consumer: NativeConsumer, offsets: dict[PartitionKey, int]) -> None:
        self._positions.update(offsets)
        lag = 0
        for tp in self.assigned:
            high = consumer.high_watermark(tp)
            position = self._positions.get(tp)
            if high is not None and position is not None:
                lag += max(high - position, 0)
        self.metrics.lag.set(lag)


def _records(batch: Batch) -> int:
    return sum(len(records) for records in batch.values())


def _decisions(
    plan: BatchPlan,
    placed: Sequence[Delivered],
    received_at: datetime,
    routed_at: datetime,
) -> list[DecisionRecord]:
    record = DecisionEncoder(received_at, routed_at, int(received_at.timestamp() * 1000)).record
    records = []
    for planned in plan.accepted:
        alert = planned.alert
        inbound = planned.inbound
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
                [placed[i] for i in planned.message_indexes],
                summary=alert.summary,
                service=alert.service,
            )
        )
    return records


def _decision_batch(
    plan: BatchPlan,
    placed: Sequence[Delivered],
    received_at: datetime,
    routed_at: datetime,
) -> DecisionBatch:
    """The batch's decisions as ``batch-v2`` rows (services/router/decision_batch.py)."""
    rows: list[list[Any]] = []
    append = rows.append
    for planned in plan.accepted:
        alert = planned.alert
        inbound = planned.inbound
        alert_id = alert.id
        dedup_key = alert.dedup_key
        append(
            [
                alert_id,
                "routed" if planned.teams else "unrouted",
                alert.status,  # a StrEnum: orjson writes its value
                alert.severity,
                None if dedup_key == alert_id else dedup_key,
                alert.summary,
                alert.service,
                planned.teams,
                planned.rule_ids,
                planned.ruleset_version,
                planned.fallback,
                planned.principal.token_id,
                inbound.topic,
                inbound.partition,
                inbound.offset,
                planned.message_indexes,
            ]
        )
    head = [received_at.isoformat(), routed_at.isoformat(), int(received_at.timestamp() * 1000)]
    return DecisionBatch(head, list(map(tuple, placed)), rows)
