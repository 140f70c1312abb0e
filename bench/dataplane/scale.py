"""Scale out: 1, 2 and 3 router processes in one group over a 12-partition alerts topic.

The routers join first (the group is stable with every member owning partitions), then the
alerts are produced; the clock runs from the first produce to the commit covering the last
record, so no router starts with the whole topic to itself. Each process is then asked for
alert ids from every partition, most of which another process routed."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx

from bench.dataplane.router_proc import RouterProcess, start_router, wait_committed, wait_group
from bench.dataplane.workload import Workload, new_topics, preload

__all__ = ["PARTITIONS", "scale_out"]

PARTITIONS = 12
LOOKUPS = 60


async def _lookups(router: RouterProcess, ids: list[str], token: str) -> int:
    """How many of ``ids`` this router answers 200 for (decisions are written in the
    background after the commit, so each id gets a few seconds)."""
    headers = {"authorization": f"Bearer {token}"}
    found = 0
    async with httpx.AsyncClient(base_url=router.url, timeout=10) as http:
        for alert_id in ids:
            deadline = time.monotonic() + 10
            while True:
                answer = await http.get(f"/v1/alerts/{alert_id}", headers=headers)
                if answer.status_code == 200:
                    found += 1
                    break
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)  # polling another process's background write
    return found


async def scale_out(work: Workload, processes: int, count: int) -> dict[str, Any]:
    topics = new_topics(PARTITIONS)
    await preload(work, topics, 0)  # the topics only
    group = f"dp-scale-{uuid.uuid4().hex[:8]}"
    routers = [start_router(work, topics, group=group) for _ in range(processes)]
    try:
        for router in routers:
            await router.wait_ready()
        await asyncio.to_thread(wait_group, work.bootstrap, group, processes)
        committed = asyncio.create_task(
            asyncio.to_thread(
                wait_committed, work.bootstrap, group, topics.alerts, PARTITIONS, count
            )
        )
        start = time.perf_counter()
        ids = await preload(work, topics, count)
        end = await committed
        seconds = end - start
        handled = [await r.metric("alertyard_router_alerts_in_total") for r in routers]
        sample = ids[:: max(len(ids) // LOOKUPS, 1)][:LOOKUPS]
        found = [await _lookups(r, sample, work.read_token) for r in routers]
    finally:
        await asyncio.gather(*(asyncio.to_thread(r.stop) for r in routers))
    return {
        "processes": processes,
        "alerts": count,
        "total_per_s": round(count / seconds),
        "per_process_per_s": [round(h / seconds) for h in handled],
        "lookups_found_per_process": [f"{f}/{len(sample)}" for f in found],
    }
