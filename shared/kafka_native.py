"""librdkafka (confluent-kafka) clients behind an asyncio face that never blocks the loop.

confluent-kafka's ``Consumer`` and ``Producer`` are blocking C clients. Rather than the
experimental ``confluent_kafka.aio`` wrappers (one executor hop and one future per produced
record, and an ``AIOConsumer`` that serialises every call, so a commit queues behind a fetch),
this module keeps the calls where they belong:

- :class:`NativeProducer`: ``produce`` is a non-blocking enqueue called on the loop thread, and
  the delivery reports are served on the loop thread too (``poll(0)`` every millisecond while
  records are outstanding). confluent-kafka re-takes the GIL for every report it hands to
  Python: served from a thread of their own, the reports fought the loop for the GIL (the loop
  thread ran on 0.6 of a core while busy 88% of the time). :class:`DeliveryBatch` counts the
  reports of a whole batch and wakes its waiter **once per batch**. Transactions run on an
  executor thread.
- :class:`NativeConsumer`: one dedicated thread runs ``poll``/``consume``/``seek``/``close``
  (librdkafka runs the rebalance callbacks inside them, on that thread); commits run on a second
  thread, so a commit can finish while the fetch thread waits inside a revoke callback. Steady
  commits are asynchronous (their answers come back through ``on_commit`` as the fetch thread
  polls): a synchronous commit holds librdkafka's fetching up while it waits.

The settings all routers share (``acks=all``, idempotence, ``murmur2_random`` so a key lands
where Java and aiokafka producers put it, manual offset store and commit) are declared here once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal, NamedTuple, cast

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from shared.logging import get_logger

__all__ = [
    "CommitAnswers",
    "CommitListener",
    "Delivered",
    "DeliveryBatch",
    "GroupProtocol",
    "Headers",
    "NativeConsumer",
    "NativeProducer",
    "Outgoing",
    "PartitionKey",
    "RebalanceHandler",
    "consumer_config",
    "producer_config",
]

log = get_logger(__name__)

PartitionKey = tuple[str, int]
"""``(topic, partition)``: hashable, cheap, and the same for every client library."""

Headers = list[tuple[str, bytes]]
Outgoing = tuple[str, bytes | None, bytes, Headers]
"""One record to produce: topic, key, value, headers (``OutMessage`` of the router is one)."""

GroupProtocol = Literal["classic", "consumer"]

_LIBRDKAFKA_LOG: Final = logging.getLogger("librdkafka")
"""librdkafka's own log lines, through the shared JSON + redaction chain (not raw stderr)."""

_ANY_PARTITION: Final = -1
"""librdkafka's RD_KAFKA_PARTITION_UA: the configured partitioner picks the partition."""

_POLL_INTERVAL_S: Final = 0.05
"""How often a consumer's fetch thread, and an idle producer's report server, wake without
traffic (a producer polls for librdkafka's error and log events too)."""

_REPORT_INTERVAL_S: Final = 0.001
"""How often the loop serves delivery reports while records are outstanding: reports reach
their batch at most this late."""


_running_loop: Final = asyncio._get_running_loop
"""The loop running on this thread, or None (no exception, unlike ``get_running_loop``)."""

_STRAYS_MAX: Final = 5_000
"""Records held while the owner is stuck before the partitions are paused. Pausing is the
last resort: in a measured run, routing stayed slow after a pause and resume."""


class Delivered(NamedTuple):
    """Where Kafka stored one produced record."""

    topic: str
    partition: int
    offset: int


_new_delivered: Callable[[type[Delivered], tuple[str, int, int]], Delivered]
_new_delivered = tuple.__new__


def producer_config(
    bootstrap: str,
    *,
    linger_ms: float = 0,
    transactional_id: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """librdkafka producer settings for at-least-once (or, with ``transactional_id``,
    exactly-once) delivery: ``acks=all``, idempotent, Kafka's own murmur2 partitioner."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": linger_ms,
        # librdkafka's default (consistent_random, CRC32) puts keys elsewhere than Java and
        # aiokafka producers do; murmur2_random is their partitioner.
        "partitioner": "murmur2_random",
        "message.timeout.ms": 60_000,
        "batch.size": 256 * 1024,
        "logger": _LIBRDKAFKA_LOG,
    }
    if transactional_id is not None:
        config["transactional.id"] = transactional_id
        config["transaction.timeout.ms"] = 60_000
    config.update(overrides)
    return config


def consumer_config(
    bootstrap: str,
    *,
    group_id: str,
    group_protocol: GroupProtocol = "classic",
    fetch_max_wait_ms: int = 20,
    **overrides: Any,
) -> dict[str, Any]:
    """librdkafka consumer settings: offsets stored and committed by hand only (after the work
    they cover is acknowledged), earliest when the group has none, incremental rebalances."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "group.protocol": group_protocol,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        "fetch.wait.max.ms": fetch_max_wait_ms,
        "logger": _LIBRDKAFKA_LOG,
    }
    if group_protocol == "classic":
        # KIP-848's protocol assigns on the broker and refuses client-side assignor settings.
        config["partition.assignment.strategy"] = "cooperative-sticky"
        # A member killed -9 holds its partitions this long (librdkafka's default: 45 s).
        config["session.timeout.ms"] = 10_000
    config.update(overrides)
    return config


class DeliveryBatch:
    """The delivery reports of one batch of ``produce`` calls.

    Reports arrive where the producer is polled: on the loop (:class:`NativeProducer`), or on
    the executor thread of a transaction call that flushes. The loop reads ``placed`` and
    ``failed`` only after :meth:`wait`; it learns of the last report once, directly on the loop
    and through ``call_soon_threadsafe`` from another thread.
    """

    __slots__ = ("_done", "_expected", "_loop", "error", "failed", "placed", "reported")

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop = loop
        self._done = asyncio.Event()
        self._expected = -1  # sealed once every record was handed over
        self.placed: list[Delivered | None] = [None] * size
        self.failed: list[int] = []
        self.reported = 0
        self.error = ""

    def report(self, index: int, err: KafkaError | None, msg: Message) -> None:
        """The delivery callback of record ``index``."""
        if err is None:  # once per record: no NamedTuple __new__ (0.5 us)
            self.placed[index] = _new_delivered(
                Delivered, (msg.topic() or "", msg.partition() or 0, msg.offset() or 0)
            )
        else:
            self.failed.append(index)
            self.error = err.str()
        self.reported += 1
        if self.reported == self._expected:
            if _running_loop() is self._loop:
                self._done.set()
            else:  # a flush on an executor thread served it
                self._loop.call_soon_threadsafe(self._done.set)

    def seal(self, expected: int) -> None:
        """No more records will be added: ``expected`` reports complete the batch (loop)."""
        self._expected = expected
        if self.reported == expected:
            self._done.set()

    async def wait(self) -> None:
        await self._done.wait()


class NativeProducer:
    """A confluent-kafka ``Producer`` whose delivery reports are served on the event loop;
    ``produce`` never blocks. Create it inside the loop that uses it."""

    def __init__(self, config: Mapping[str, Any], *, name: str = "kafka-producer") -> None:
        self._producer = Producer(dict(config))
        self._closing = False
        self._produced = asyncio.Event()
        """Set when records are handed over: an idle report server wakes at once."""
        self._drained = asyncio.Event()
        """Set by the report server once no record is outstanding (what :meth:`flush` awaits)."""
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)
        self._reports = asyncio.get_running_loop().create_task(
            self._serve_reports(), name=f"{name}-reports"
        )

    async def _serve_reports(self) -> None:
        """Serve delivery reports (and librdkafka's events) on the loop until closed: every
        millisecond while records are outstanding, else when records are handed over or
        every :data:`_POLL_INTERVAL_S`."""
        poll, outstanding, produced = self._producer.poll, self._producer.__len__, self._produced
        while not self._closing:
            try:
                poll(0)
            except Exception as exc:  # a callback raised: the reports after it still count
                log.error("delivery_report_failed", error=repr(exc))
            if outstanding():
                await asyncio.sleep(_REPORT_INTERVAL_S)
                continue
            self._drained.set()
            produced.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(produced.wait(), _POLL_INTERVAL_S)

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Headers | None,
        on_delivery: Callable[[KafkaError | None, Message], None],
    ) -> None:
        """Enqueue one record; raises ``BufferError`` when the local queue is full and
        ``KafkaException`` on a state error (the caller retries or replays)."""
        self._producer.produce(
            topic, value, key, headers=_headers(headers), on_delivery=on_delivery
        )
        self._handed_over()

    def produce_batch(
        self,
        messages: Iterable[Outgoing],
        delivery: DeliveryBatch,
        indexes: Iterable[int],
    ) -> tuple[int, list[int], str]:
        """Enqueue ``messages`` (topic, key, value, headers) whose slots are ``indexes`` of
        ``delivery``; returns how many were handed over, the slots refused and the last
        refusal. Seal ``delivery`` afterwards."""
        # Untyped on purpose: the stub's header type is wider than ours (list is invariant),
        # and a cast per record (a function call) is measurable on this path.
        produce: Callable[..., None] = self._producer.produce
        report = delivery.report
        partial = functools.partial
        handed = 0
        refused: list[int] = []
        error = ""
        for index, (topic, key, value, headers) in zip(indexes, messages, strict=True):
            try:
                # Positional, in Producer.c's order (topic, value, key, partition, callback,
                # on_delivery, timestamp, headers): its keyword parsing cost ~0.3-0.6 us per
                # record. The callback per record stays: a report names no slot of its own.
                produce(
                    topic,
                    value,
                    key,
                    _ANY_PARTITION,
                    partial(report, index),
                    None,
                    0,
                    headers or None,
                )
            except (BufferError, KafkaException) as exc:  # full queue or a state error
                refused.append(index)
                error = repr(exc)
                continue
            handed += 1
        self._handed_over()
        return handed, refused, error

    def _handed_over(self) -> None:
        """Records are outstanding: :meth:`flush` waits again and an idle server wakes."""
        self._drained.clear()
        self._produced.set()

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def init_transactions(self, timeout_s: float = 30.0) -> None:
        await self._call(self._producer.init_transactions, timeout_s)

    def begin_transaction(self) -> None:
        """Local state change only (no broker round trip): safe on the loop thread."""
        self._producer.begin_transaction()

    async def send_offsets_to_transaction(
        self, offsets: Mapping[PartitionKey, int], group_metadata: Any, timeout_s: float = 30.0
    ) -> None:
        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        await self._call(
            self._producer.send_offsets_to_transaction, partitions, group_metadata, timeout_s
        )

    async def commit_transaction(self, timeout_s: float = 30.0) -> None:
        await self._call(self._producer.commit_transaction, timeout_s)

    async def abort_transaction(self, timeout_s: float = 30.0) -> None:
        await self._call(self._producer.abort_transaction, timeout_s)

    async def flush(self, timeout_s: float) -> int:
        """Wait for outstanding deliveries (the report server serves their reports); returns
        how many are left."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), timeout_s)
        return len(self._producer)

    async def close(self, timeout_s: float = 10.0) -> None:
        if self._closing:
            return
        await self.flush(timeout_s)
        self._closing = True
        self._produced.set()  # an idle server sees the flag now
        await self._reports
        self._executor.shutdown(wait=False)


def _headers(headers: Headers | None) -> list[tuple[str, str | bytes | None]] | None:
    # The stub's element type is wider (str | bytes | None) and list is invariant.
    return cast("list[tuple[str, str | bytes | None]] | None", headers or None)


class RebalanceHandler:
    """What a :class:`NativeConsumer` tells its owner about partitions (on the loop thread).

    ``revoked`` runs to completion before librdkafka lets the partitions go: in cooperative
    mode the client calls ``incremental_unassign`` itself once the callback returns.
    """

    async def on_assigned(self, partitions: list[PartitionKey]) -> None:
        """Partitions added to this member."""

    async def on_revoked(self, partitions: list[PartitionKey]) -> Mapping[PartitionKey, int]:
        """Partitions about to go: finish their work; returns the offsets to commit for them
        (committed by the fetch thread inside the callback, before they move)."""
        return {}

    async def on_lost(self, partitions: list[PartitionKey]) -> None:
        """Partitions already gone (session lost): their offsets can no longer be committed."""


Batch = dict[PartitionKey, list[Message]]
CommitAnswers = dict[PartitionKey, tuple[int, str | None]]
"""A commit's answer: each partition's offset and the error text (None: committed)."""
CommitListener = Callable[[CommitAnswers], None]


def _error_text(error: KafkaError | None) -> str | None:
    # A partition of a successful commit carries no error (older clients: NO_ERROR).
    if error is None or error.code() == KafkaError.NO_ERROR:
        return None
    return str(error.str())


def _add(batch: Batch, messages: Iterable[Message]) -> None:
    """Group ``messages`` into ``batch`` by partition, in offset order; errors are logged."""
    for message in messages:
        error = message.error()
        if error is not None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consume_error", error=error.str())
            continue
        key = (message.topic() or "", message.partition() or 0)
        found = batch.get(key)
        if found is None:
            batch[key] = [message]
        else:
            found.append(message)


class NativeConsumer:
    """A confluent-kafka ``Consumer`` driven from asyncio: fetch thread + commit thread."""

    def __init__(
        self,
        config: Mapping[str, Any],
        topics: Sequence[str],
        handler: RebalanceHandler,
        *,
        callback_timeout_s: float = 60.0,
    ) -> None:
        # librdkafka calls on_commit on the thread that polls (the fetch thread).
        self._consumer = Consumer({**config, "on_commit": self._answered})
        self._topics = list(topics)
        self._commit_listener: CommitListener | None = None
        self._handler = handler
        self._callback_timeout_s = callback_timeout_s
        self._fetch = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kafka-fetch")
        self._commits = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kafka-commit")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.rebalances = 0
        self.high_watermarks: dict[PartitionKey, int] = {}
        """Written by the fetch thread only; read by the owner for its lag metric."""

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._on_fetch_thread(
            self._consumer.subscribe,
            self._topics,
            self._callback("on_assigned"),
            self._callback("on_revoked"),
            self._callback("on_lost"),
        )

    def _callback(self, kind: str) -> Callable[[Consumer, list[TopicPartition]], None]:
        def on_rebalance(_: Consumer, partitions: list[TopicPartition]) -> None:
            # The fetch thread, inside poll/consume/close: hand over to the loop and wait, so
            # librdkafka moves the partitions only after the owner is done with them.
            loop = self._loop
            assert loop is not None  # set by start()
            keys = [(tp.topic, tp.partition) for tp in partitions]
            self.rebalances += 1
            coroutine = getattr(self._handler, kind)(keys)
            try:
                future = asyncio.run_coroutine_threadsafe(coroutine, loop)
                offsets = future.result(timeout=self._callback_timeout_s)
                if offsets:
                    # From this thread, inside the callback: with the KIP-848 protocol a
                    # commit from another thread waits until the callback has returned.
                    self._commit([TopicPartition(t, p, o) for (t, p), o in offsets.items()])
            except Exception as exc:  # never let the C callback raise: log and go on
                log.error("rebalance_callback_failed", kind=kind, error=repr(exc))

        return on_rebalance

    async def _on_fetch_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._fetch, fn, *args)

    def fetch(self, max_records: int, timeout_s: float) -> asyncio.Future[Batch]:
        """Up to ``max_records``, grouped by partition in offset order; waits at most
        ``timeout_s`` for the first one, then takes what is already fetched without waiting.

        Not a coroutine: the fetch thread starts reading at this call, not when the caller
        first yields to the loop, so a prefetch overlaps the CPU work that follows it (as a
        coroutine, a router's next fetch began only after it had dispatched the current batch:
        ~3 ms of waiting per 500-record batch).
        """
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._fetch, self._fetch_batch, max_records, timeout_s)

    def _fetch_batch(self, max_records: int, timeout_s: float) -> Batch:
        first = self._consumer.poll(timeout_s)
        if first is None:
            return {}
        messages = [first]
        if max_records > 1:
            messages.extend(self._consumer.consume(max_records - 1, 0))
        batch: Batch = {}
        _add(batch, messages)
        for key in batch:  # here, not on the loop: a consumer call may wait for a rebalance
            try:
                _, high = self._consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
            except KafkaException:
                continue
            if high >= 0:
                self.high_watermarks[key] = high
        return batch

    async def keep_polling(self, until: threading.Event) -> Batch:
        """Serve rebalance callbacks until ``until`` is set, for while the owner is stuck on a
        batch (a token check waiting for Redis), so a rebalance still goes ahead. Returns the
        records polled meanwhile (the owner routes them next); past ``_STRAYS_MAX`` the
        partitions are paused so no more come in."""
        batch: Batch = await self._on_fetch_thread(self._keep_polling, until)
        return batch

    def _keep_polling(self, until: threading.Event) -> Batch:
        consumer = self._consumer
        strays: Batch = {}
        held = 0
        paused: dict[PartitionKey, TopicPartition] = {}
        try:
            while not until.is_set():
                if held >= _STRAYS_MAX:  # a long wait: stop fetching (memory stays bounded)
                    assignment = consumer.assignment()  # partitions assigned meanwhile too
                    consumer.pause(assignment)
                    paused.update(((tp.topic, tp.partition), tp) for tp in assignment)
                message = consumer.poll(_POLL_INTERVAL_S)
                if message is not None:
                    _add(strays, [message])
                    held += 1
        finally:
            # Revoked ones too: librdkafka keeps a partition's pause flag, and a partition
            # that comes back later would otherwise stay paused for good.
            with contextlib.suppress(KafkaException):
                consumer.resume(list(paused.values()))
        return strays

    async def seek(self, offsets: Mapping[PartitionKey, int]) -> None:
        """Read these partitions again from the given offsets."""
        await self._on_fetch_thread(self._seek, dict(offsets))

    def _seek(self, offsets: dict[PartitionKey, int]) -> None:
        for (topic, partition), offset in offsets.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # not fetching yet: fall back to the committed offset
                log.warning("seek_failed", topic=topic, partition=partition, error=str(exc))

    async def commit(self, offsets: Mapping[PartitionKey, int]) -> None:
        """Commit ``offsets`` (next to read) and wait for the coordinator's answer.

        For the rare commits that must be known done (a drain, a shutdown): librdkafka's
        synchronous commit holds up fetching while it waits (measured: a commit per batch
        halved what a consumer could read), so steady-state commits use
        :meth:`commit_in_background`."""
        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._commits, self._commit, partitions)

    def on_commit_answers(self, listener: CommitListener) -> None:
        """Call ``listener`` on the loop thread with the coordinator's answer to each commit:
        ``{partition: (offset, error text or None)}``."""
        self._commit_listener = listener

    async def commit_in_background(self, offsets: Mapping[PartitionKey, int]) -> None:
        """Hand ``offsets`` to librdkafka to commit (returns once handed over, on the commit
        thread: no consumer call on the loop); the answer reaches the
        :meth:`on_commit_answers` listener when the fetch thread next polls."""
        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            self._commits,
            functools.partial(self._consumer.commit, offsets=partitions, asynchronous=True),
        )

    def _answered(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        # librdkafka's offset_commit_cb, on the polling thread: never raise into C.
        listener, loop = self._commit_listener, self._loop
        if listener is None or loop is None:
            return
        try:
            answers = {
                (tp.topic, tp.partition): (tp.offset, _error_text(tp.error or error))
                for tp in partitions
            }
            loop.call_soon_threadsafe(listener, answers)
        except RuntimeError:  # the loop is closed: nobody is listening
            pass
        except Exception as exc:  # an error here would surface from the fetch's poll
            log.error("commit_answer_unreadable", error=repr(exc))

    def _commit(self, partitions: list[TopicPartition]) -> None:
        results = self._consumer.commit(offsets=partitions, asynchronous=False)
        failed = [tp for tp in results or () if tp.error is not None]
        if failed:
            raise KafkaException(failed[0].error)

    async def group_metadata(self) -> Any:
        """The consumer's group metadata (for ``send_offsets_to_transaction``), read on the
        commit thread: no consumer call runs on the loop thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._commits, self._consumer.consumer_group_metadata)

    def high_watermark(self, key: PartitionKey) -> int | None:
        """The high watermark last seen by the fetch thread (no call into the client)."""
        return self.high_watermarks.get(key)

    async def close(self) -> None:
        """Leave the group (the revoke callback runs first) and free the client (once)."""
        if self._closed:
            return
        self._closed = True
        await self._on_fetch_thread(self._consumer.close)
        self._fetch.shutdown(wait=False)
        self._commits.shutdown(wait=False)
