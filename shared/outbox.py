"""Transactional outbox: lifecycle events are written in the same Redis transaction as the change.

A change and its event are queued on one ``MULTI`` pipeline: :func:`stage_event` adds a Lua call
that takes the next per-source sequence number and appends the event to the source's outbox
stream. ``EXEC`` applies both or neither, so a change without its event cannot happen.

:class:`OutboxRelay` then publishes the stream to the audit topic in order, at least once
(``acks=all``; the stream entry is trimmed only after Kafka acknowledged it). One relay per
source holds a lease in Redis so two processes do not publish the same entries at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from shared.events import Event
from shared.logging import get_logger

__all__ = ["OutboxRelay", "outbox_key", "stage_event"]

log = get_logger(__name__)

_STAGE = """
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], '*', 'seq', seq, 'event', ARGV[1])
return seq
"""


def outbox_key(source: str) -> str:
    return f"alertyard:outbox:{source}"


def stage_event(pipe: Pipeline, event: Event) -> None:
    """Queue ``event`` on a transactional pipeline; it is written only if the pipeline executes."""
    key = outbox_key(event.source)
    pipe.eval(_STAGE, 2, key, key + ":seq", event.model_dump_json())


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
        lease_s: float = 10.0,
        owner: str = "",
    ) -> None:
        self._redis = redis
        self._producer = producer
        self._source = source
        self._topic = topic
        self._batch = batch
        self._idle_sleep_s = idle_sleep_s
        self._lease_ms = int(lease_s * 1000)
        self._owner = owner or f"relay-{id(self)}"
        self._stopping = asyncio.Event()
        self.published = 0

    async def run(self) -> None:
        """Relay until :meth:`stop`; survives Redis/Kafka outages by retrying with backoff."""
        backoff = 0.1
        while not self._stopping.is_set():
            try:
                if not await self._hold_lease():
                    await self._sleep(1.0)
                    continue
                sent = await self.relay_once()
                backoff = 0.1
                if sent == 0:
                    await self._sleep(self._idle_sleep_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an outage: keep the entries, retry later
                log.warning(
                    "outbox_relay_retry", source=self._source, error=str(exc), backoff_s=backoff
                )
                await self._sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def stop(self) -> None:
        self._stopping.set()

    async def relay_once(self) -> int:
        """Publish the oldest pending entries; returns how many were published and trimmed."""
        key = outbox_key(self._source)
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]], await self._redis.xrange(key, count=self._batch)
        )
        if not entries:
            return 0
        futures = []
        for _entry_id, fields in entries:
            event = _with_sequence(fields)
            futures.append(
                await self._producer.send(self._topic, value=event, key=self._source.encode())
            )
        await asyncio.gather(*futures)  # every entry is acknowledged by Kafka (acks=all)
        await self._redis.xdel(key, *[entry_id for entry_id, _ in entries])
        self.published += len(entries)
        return len(entries)

    async def _hold_lease(self) -> bool:
        lease = f"{outbox_key(self._source)}:lease"
        if await self._redis.set(lease, self._owner, nx=True, px=self._lease_ms):
            return True
        holder = cast(bytes | None, await self._redis.get(lease))
        if holder is not None and holder.decode() == self._owner:
            await self._redis.pexpire(lease, self._lease_ms)
            return True
        return False

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)


def _with_sequence(fields: dict[bytes, bytes]) -> bytes:
    """The staged event with its per-source sequence number filled in."""
    body: dict[str, Any] = json.loads(fields[b"event"])
    body["sequence"] = int(fields[b"seq"])
    return json.dumps(body, separators=(",", ":")).encode()
