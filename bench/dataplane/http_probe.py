"""HTTP GET latency on a router process while it routes a backlog at full rate: alert
lookups (``/v1/alerts/{id}``) and ``/healthz``, one request at a time, then the same idle."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from bench.dataplane.router_proc import RouterProcess, start_router, wait_committed, wait_group
from bench.dataplane.workload import Workload, new_topics, preload

__all__ = ["http_under_load"]

IDLE_REQUESTS = 200
CLIENTS = 4
"""Concurrent probing clients while the router is busy (more samples in a short run)."""


def _percentiles(samples: list[float]) -> dict[str, float | int]:
    if not samples:
        return {"requests": 0}
    ordered = sorted(samples)
    return {
        "requests": len(ordered),
        "p50_ms": round(ordered[len(ordered) // 2], 2),
        "p99_ms": round(ordered[max(int(len(ordered) * 0.99) - 1, 0)], 2),
        "max_ms": round(ordered[-1], 2),
    }


async def _probe(
    http: httpx.AsyncClient,
    router: RouterProcess,
    ids: list[str],
    token: str,
    until: Any,
    seed: int = 0,
) -> dict[str, list[Any]]:
    lookups: list[float] = []  # ms
    health: list[float] = []
    found = 0
    headers = {"authorization": f"Bearer {token}"}
    rng = random.Random(seed)
    while not until():
        started = time.perf_counter()
        answer = await http.get(f"{router.url}/v1/alerts/{rng.choice(ids)}", headers=headers)
        lookups.append((time.perf_counter() - started) * 1000)
        found += answer.status_code == 200
        started = time.perf_counter()
        (await http.get(f"{router.url}/healthz")).raise_for_status()
        health.append((time.perf_counter() - started) * 1000)
    return {"lookup": lookups, "healthz": health, "found": [found]}


def _merge(probes: list[dict[str, list[Any]]]) -> dict[str, Any]:
    lookups = [s for p in probes for s in p["lookup"]]
    health = [s for p in probes for s in p["healthz"]]
    found = sum(f for p in probes for f in p["found"])
    return {"lookup": {**_percentiles(lookups), "found": found}, "healthz": _percentiles(health)}


async def http_under_load(work: Workload, count: int) -> dict[str, Any]:
    topics = new_topics(6)
    ids = await preload(work, topics, count)
    router = start_router(work, topics)
    try:
        assigned = await asyncio.to_thread(wait_group, work.bootstrap, router.group, 1)
        committed = asyncio.create_task(
            asyncio.to_thread(wait_committed, work.bootstrap, router.group, topics.alerts, 6, count)
        )
        async with httpx.AsyncClient(timeout=30) as http:
            probes = [
                _probe(http, router, ids, work.read_token, committed.done, seed=n)
                for n in range(CLIENTS)
            ]
            busy = _merge(await asyncio.gather(*probes))
            end = await committed
            left = [IDLE_REQUESTS]

            def enough() -> bool:
                left[0] -= 1
                return left[0] < 0

            idle = _merge([await _probe(http, router, ids, work.read_token, enough)])
    finally:
        await asyncio.to_thread(router.stop)
    return {
        "alerts": count,
        "routed_per_s_while_probed": round(count / (end - assigned)),
        "under_load": busy,
        "idle": idle,
    }
