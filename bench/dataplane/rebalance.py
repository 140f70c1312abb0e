"""The routing pause the remaining routers show when one joins and when one leaves.

Two routers share a 12-partition alerts topic under a steady 2,000 alerts/s, each alert
produced to partition ``n % 12`` (so its output says which input partition it came from).
A third router joins, later one of the first two stops (SIGTERM, it drains and leaves).
For each event: the largest gap between consecutive outputs of a partition that kept its
owner across the event, against the largest gap of the same partitions in a quiet window
of the same length before the join."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.bench_router import _alert
from bench.dataplane.router_proc import (
    group_assignment,
    start_router,
    wait_group,
    wait_rebalancing,
)
from bench.dataplane.workload import TEAMS, Workload, librdkafka_producer, new_topics, preload

__all__ = ["routing_pause"]

PARTITIONS = 12
RATE = 2_000
SETTLE_S = 3.0
"""Steady routing kept after each event before the next, and before the first."""
WITHIN_S = 60.0
"""A group that has not settled by then is reported as such (and the run goes on)."""


class _Outputs:
    """Arrival times (``perf_counter``) of routed copies, by input partition."""

    def __init__(self, bootstrap: str, team_topics: list[str]) -> None:
        self.arrivals: dict[int, list[float]] = {p: [] for p in range(PARTITIONS)}
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"dp-reader-{uuid.uuid4().hex[:8]}"}
        )
        self._consumer.assign(
            [TopicPartition(t, p, OFFSET_END) for t in team_topics for p in range(PARTITIONS)]
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            for m in self._consumer.consume(500, 0.01):
                if m.error() is None and m.value():
                    now = time.perf_counter()
                    n = orjson.loads(m.value())["payload"]["n"]  # type: ignore[arg-type]
                    self.arrivals[n % PARTITIONS].append(now)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._consumer.close()

    def largest_gap(self, partitions: set[int], start: float, end: float) -> float:
        gap = 0.0
        for p in partitions:
            times = [t for t in self.arrivals[p] if start <= t <= end]
            bounds = [start, *times, end]
            gap = max(gap, *(b - a for a, b in itertools.pairwise(bounds)))
        return round(gap * 1000, 1)


class _Load:
    """A steady stream to explicit partitions, paced in 5 ms ticks (a load generator)."""

    def __init__(self, bootstrap: str, topic: str, token: str, rate: int) -> None:
        self._rate = rate
        self._producer = librdkafka_producer(bootstrap, **{"linger.ms": 0})
        self._topic = topic
        self._headers: list[tuple[str, str | bytes | None]] = [
            ("authorization", f"Bearer {token}".encode())
        ]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._send, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _send(self) -> None:
        tick, per_tick, n = 0.005, max(self._rate // 200, 1), 0
        start = time.perf_counter()
        while not self._stop.is_set():
            for _ in range(per_tick):
                key, value = _alert(n, time.time_ns())
                self._producer.produce(
                    self._topic, value, key, partition=n % PARTITIONS, headers=self._headers
                )
                n += 1
            self._producer.poll(0)
            delay = start + (n // per_tick) * tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # pacing the load, not synchronising with anything
        self._producer.flush(30)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def _kept(before: dict[str, set[int]], after: dict[str, set[int]]) -> set[int]:
    """Partitions owned by the same member before and after."""
    return {p for member, owned in before.items() for p in owned & after.get(member, set())}


async def routing_pause(work: Workload, protocol: str | None, rate: int = RATE) -> dict[str, Any]:
    topics = new_topics(PARTITIONS)
    await preload(work, topics, 0)  # the topics only
    extra = {"ALERTYARD_ROUTER_GROUP_PROTOCOL": protocol} if protocol else {}
    group = f"dp-pause-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": work.bootstrap})
    outputs = _Outputs(work.bootstrap, [topics.team_topic(t) for t in TEAMS])
    load = _Load(work.bootstrap, topics.alerts, work.publish_token, rate)
    first = [start_router(work, topics, group=group, **extra) for _ in range(2)]
    joiner = None
    try:
        for router in first:
            await router.wait_ready()
        await asyncio.to_thread(wait_group, work.bootstrap, group, 2)
        outputs.start()
        load.start()
        await asyncio.sleep(SETTLE_S)  # steady routing before the join (the quiet window)
        before = group_assignment(admin, group) or {}
        quiet = (time.perf_counter() - SETTLE_S + 0.5, time.perf_counter())
        joiner = start_router(work, topics, group=group, **extra)
        joined_at = await asyncio.to_thread(wait_rebalancing, work.bootstrap, group, 2)
        stable = await asyncio.to_thread(wait_group, work.bootstrap, group, 3, WITHIN_S)
        await asyncio.sleep(SETTLE_S)
        with_three = group_assignment(admin, group) or {}
        leaving = asyncio.create_task(asyncio.to_thread(first[0].stop))
        left_at = await asyncio.to_thread(wait_rebalancing, work.bootstrap, group, 3)
        restable = await asyncio.to_thread(wait_group, work.bootstrap, group, 2, WITHIN_S)
        await leaving
        await asyncio.sleep(SETTLE_S)
        after = group_assignment(admin, group) or {}
    finally:
        load.stop()
        outputs.stop()
        for router in [*first, *([joiner] if joiner else [])]:
            await asyncio.to_thread(router.stop)
    all_partitions = set(range(PARTITIONS))
    kept_join = _kept(before, with_three)
    kept_leave = _kept(with_three, after)
    # Each event's window: from the group leaving the stable state to SETTLE_S after it is
    # stable again; the quiet window is as long as that settling time, before the join.
    return {
        "protocol": protocol or "the router's default",
        "rate_per_s": rate,
        "join": {
            "partitions_kept": len(kept_join),
            "largest_gap_kept_ms": outputs.largest_gap(kept_join, joined_at, stable + SETTLE_S),
            "largest_gap_all_ms": outputs.largest_gap(all_partitions, joined_at, stable + SETTLE_S),
            "rebalance_s": round(stable - joined_at, 2),
        },
        "leave": {
            "partitions_kept": len(kept_leave),
            "largest_gap_kept_ms": outputs.largest_gap(kept_leave, left_at, restable + SETTLE_S),
            "largest_gap_all_ms": outputs.largest_gap(all_partitions, left_at, restable + SETTLE_S),
            "rebalance_s": round(restable - left_at, 2),
        },
        "quiet_window_largest_gap_ms": outputs.largest_gap(all_partitions, *quiet),
    }
