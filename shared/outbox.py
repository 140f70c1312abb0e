"""Transactional outbox: lifecycle events are written in the same Redis transaction as the change.

A change and its event are queued on one ``MULTI`` pipeline: :func:`stage_event` adds a Lua call
that takes the next per-source sequence number and appends the event to the source's outbox
stream. ``EXEC`` applies both or neither, so a change without its event cannot happen.

:class:`OutboxRelay` then publishes the stream to the audit topic in order, at least once
(``acks=all``; an entry is deleted only after Kafka acknowledged it). One relay per source
publishes at a time: it holds a fenced lease (:mod:`shared.outbox_lease`).

Why the lease cannot expire under a relay that is still publishing: the relay's producer
(:func:`make_relay_producer`) is not idempotent, so aiokafka gives every record up after the
request timeout ``R`` in its buffer plus ``R`` in flight: a send resolves within ``2R``. The
lease lasts ``2R`` plus a margin, is extended before every batch, and a batch is sent only
while at least ``2R`` of the lease remain; so every record a relay sent is delivered or failed
before its lease can pass to another relay. What may repeat (docs/delivery.md, "Audit events"):
the batch in flight when a relay crashed or lost Redis for longer than the lease, and records
of a batch that failed and is sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any, Final, cast

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from shared.events import Event
from shared.kafka import make_producer
from shared.keyspace import CONTROL
from shared.logging import get_logger
from shared.outbox_lease import OutboxKeys, OutboxLease
from shared.retries import RetryPolicy

__all__ = [
    "RELAY_REQUEST_TIMEOUT_S",
    "OutboxMetrics",
    "OutboxRelay",
    "make_relay_producer",
    "outbox_key",
    "outbox_keys",
    "stage_event",
]

log = get_logger(__name__)

RELAY_REQUEST_TIMEOUT_S: Final = 30.0
"""The relay producer's request timeout ``R``; the lease lasts ``2R`` + a margin."""
LEASE_MARGIN_S: Final = 5.0

_STAGE = """
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], '*', 'seq', seq, 'event', ARGV[1])
return seq
"""


def outbox_keys(source: str) -> OutboxKeys:
    """The keys of a source's outbox. They are in the control plane's Redis Cluster slot
    (:mod:`shared.keyspace`): an event is staged in the same transaction as the change it
    records, and the relay's scripts touch the stream, its counter and its lease together."""
    stream = f"{CONTROL}:outbox:{source}"
    return OutboxKeys(
        stream=stream, seq=f"{stream}:seq", lease=f"{stream}:lease", fence=f"{stream}:fence"
    )


def outbox_key(source: str) -> str:
    """The source's outbox stream."""
    return outbox_keys(source).stream


def stage_event(pipe: Pipeline, event: Event) -> None:
    """Queue ``event`` on a transactional pipeline; it is written only if the pipeline executes."""
    keys = outbox_keys(event.source)
    pipe.eval(_STAGE, 2, keys.stream, keys.seq, event.model_dump_json())


def make_relay_producer(
    bootstrap: str, *, request_timeout_s: float = RELAY_REQUEST_TIMEOUT_S, **overrides: Any
) -> AIOKafkaProducer:
    """``acks=all`` without idempotence: an idempotent aiokafka producer retries a batch
    forever, which would let a record land after the relay's lease passed to another relay."""
    options = {"enable_idempotence": False, **overrides}
    return make_producer(bootstrap, request_timeout_ms=int(request_timeout_s * 1000), **options)


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry or CollectorRegistry()
        self.backlog = Gauge(
            "alertyard_outbox_backlog",
            "Events staged in the outbox and not yet acknowledged by Kafka",
            ["source"],
            registry=r,
        )
        self.published = Counter(
            "alertyard_outbox_published", "Events relayed to Kafka", ["source"], registry=r
        )
        self.leases_lost = Counter(
            "alertyard_outbox_leases_lost",
            "Times a relay found its lease taken by another relay",
            ["source"],
            registry=r,
        )


def _retry_relay(error: Exception) -> bool:
    """The relay retries every error: an outage (Redis, Kafka) is expected and heals; anything
    else is logged too, and a dead relay would strand the outbox."""
    if not isinstance(error, RedisError | KafkaError | OSError | TimeoutError):
        log.error("outbox_relay_unexpected_error", error=type(error).__name__)
    return True


RELAY_RETRY: Final = RetryPolicy(
    name="outbox relay", on=_retry_relay, wait_initial=0.1, wait_max=5.0
)
"""Exponential backoff with jitter, capped at 5 s, never giving up."""


class OutboxRelay:
    """Publishes one source's outbox stream to Kafka, in order, at least once."""

    def __init__(
        self,
        redis: Redis,
        producer: AIOKafkaProducer,
        *,
        source: str,
        topic: str,
        batch: int = 500,
        idle_sleep_s: float = 0.05,
        request_timeout_s: float = RELAY_REQUEST_TIMEOUT_S,
        lease_s: float | None = None,
        owner: str = "",
        metrics: OutboxMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``request_timeout_s`` must be the producer's (see :func:`make_relay_producer`);
        ``lease_s`` defaults to twice that plus a margin and may not be shorter."""
        self._delivery_bound_s = 2 * request_timeout_s
        lease = lease_s if lease_s is not None else self._delivery_bound_s + LEASE_MARGIN_S
        if lease <= self._delivery_bound_s:
            raise ValueError(
                f"lease_s={lease} must exceed twice the producer's request timeout"
                f" ({self._delivery_bound_s} s): a record could land after the lease passed on"
            )
        self._lease_s = lease
        self._redis = redis
        self._producer = producer
        self._source = source
        self._topic = topic
        self._batch = batch
        self._idle_sleep_s = idle_sleep_s
        self._keys = outbox_keys(source)
        self._lease = OutboxLease(
            redis, self._keys, owner=owner or f"relay-{id(self)}", lease_ms=int(lease * 1000)
        )
        self._metrics = metrics or OutboxMetrics()
        self._clock = clock
        self._stopping = asyncio.Event()
        self.published = 0

    @property
    def holds_lease(self) -> bool:
        return self._lease.token > 0

    async def run(self) -> None:
        """Relay until :meth:`stop`, then give the lease up; outages are retried (stamina)."""
        try:
            while not self._stopping.is_set():
                sent = 0
                async for attempt in RELAY_RETRY.retrying():
                    with attempt:
                        sent = await self.relay_once()
                if sent == 0:
                    await self._sleep(self._idle_sleep_s if self.holds_lease else 1.0)
        finally:
            with contextlib.suppress(Exception):  # Redis down: the lease simply expires
                await self._lease.release()

    def stop(self) -> None:
        self._stopping.set()

    async def relay_once(self) -> int:
        """Hold the lease, publish the oldest pending entries, delete them (fenced); returns how
        many were published and deleted (0 when another relay holds the lease)."""
        started = self._clock()
        if not await self._lease.hold():
            return 0
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._redis.xrange(self._keys.stream, count=self._batch),
        )
        if not entries:
            self._metrics.backlog.labels(source=self._source).set(0)
            return 0
        if self._clock() - started > self._lease_s - self._delivery_bound_s:
            return 0  # too little lease left to send safely: extend first (next round)
        futures = [
            await self._producer.send(
                self._topic, value=_with_sequence(fields), key=self._source.encode()
            )
            for _entry_id, fields in entries
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        acked = next(
            (i for i, r in enumerate(results) if isinstance(r, BaseException)), len(results)
        )
        if acked and not await self._delete([entry_id for entry_id, _ in entries[:acked]]):
            return 0
        if acked < len(results):
            raise cast(BaseException, results[acked])  # retried: from the first unacked entry
        return acked

    async def _delete(self, entry_ids: list[bytes]) -> bool:
        left = await self._lease.delete(entry_ids)
        if left is None:  # another relay holds the lease and publishes these entries again
            self._metrics.leases_lost.labels(source=self._source).inc()
            log.warning("outbox_lease_lost", source=self._source, unconfirmed=len(entry_ids))
            return False
        self.published += len(entry_ids)
        self._metrics.published.labels(source=self._source).inc(len(entry_ids))
        self._metrics.backlog.labels(source=self._source).set(left)
        return True

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


def _with_sequence(fields: dict[bytes, bytes]) -> bytes:
    """The staged event with its per-source sequence number filled in."""
    body: dict[str, Any] = json.loads(fields[b"event"])
    body["sequence"] = int(fields[b"seq"])
    return json.dumps(body, separators=(",", ":")).encode()
