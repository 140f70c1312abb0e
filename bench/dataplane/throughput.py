"""One throughput run per loop over the same pre-produced alerts, each in a fresh group.

Every figure is seconds from partition assignment to the commit covering the last record."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.bench_router import _bare_loop
from bench.dataplane import bare_confluent
from bench.dataplane.router_proc import (
    ROOT,
    RouterProcess,
    start_router,
    wait_committed,
    wait_group,
)
from bench.dataplane.workload import TEAMS, Workload
from shared.settings import TopicSettings

__all__ = ["QUIX", "Loop", "loops", "quix_environment_ready", "stage_costs"]

QUIX = [
    *("uv", "run", "--no-project", "--compile-bytecode"),
    *("--with", "quixstreams==3.28.1", "python"),
]
"""Quix Streams in its own pinned environment (it pins an older confluent-kafka), with its
bytecode compiled as the router's is (``make install``)."""

Loop = Callable[[Workload, TopicSettings, int], Awaitable[dict[str, Any]]]


async def _rdkafka(work: Workload, topics: TopicSettings, count: int) -> dict[str, Any]:
    seconds = await asyncio.to_thread(bare_confluent.route, work.bootstrap, topics, count)
    return {"seconds": seconds}


async def _aiokafka(work: Workload, topics: TopicSettings, count: int) -> dict[str, Any]:
    """bench_router's reference loop as it was (one sink topic), for continuity."""
    seconds = await _bare_loop(work.bootstrap, topics.alerts, topics.team_topic("sre"), count)
    return {"seconds": seconds}


def quix_environment_ready() -> bool:
    """Install (or find cached) the pinned Quix environment before anything is timed."""
    done = subprocess.run([*QUIX, "-c", "import quixstreams"], capture_output=True, check=False)
    return done.returncode == 0


async def _quix(work: Workload, topics: TopicSettings, count: int) -> dict[str, Any]:
    spec = {
        "bootstrap": work.bootstrap,
        "source": topics.alerts,
        "team_prefix": topics.team_prefix,
        "teams": list(TEAMS),
        "group": f"dp-quix-{uuid.uuid4().hex[:8]}",
        "count": count,
    }
    proc = await asyncio.create_subprocess_exec(
        *QUIX,
        str(Path("bench") / "quix_router.py"),
        json.dumps(spec),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"quix app failed: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def run_router(
    work: Workload, topics: TopicSettings, count: int, **extra: str
) -> tuple[dict[str, Any], RouterProcess]:
    """One router process over the backlog: assignment (group stable, seen from outside) to
    the last committed offset. The process is stopped before returning."""
    router = start_router(work, topics, **extra)
    try:
        assigned = await asyncio.to_thread(wait_group, work.bootstrap, router.group, 1)
        end = await asyncio.to_thread(
            wait_committed, work.bootstrap, router.group, topics.alerts, topics.partitions, count
        )
    finally:
        await asyncio.to_thread(router.stop)
    return {"seconds": end - assigned, "stages_us": stage_costs(router)}, router


def _router(**extra: str) -> Loop:
    async def loop(work: Workload, topics: TopicSettings, count: int) -> dict[str, Any]:
        result, _ = await run_router(work, topics, count, **extra)
        return result

    return loop


def stage_costs(router: RouterProcess) -> dict[str, float]:
    """Per-record cost of each stage (us) from the process's ``routing_summary`` lines (each
    sums its batches' stage times). Stages that wait (acks, offsets) overlap the next batch's
    work in the pipeline."""
    lines = router.summary_lines()
    records = sum(int(line.get("records", 0)) for line in lines)
    if not records:
        return {}
    totals: dict[str, float] = {}
    for line in lines:
        for name, value in line.items():
            stage = name.endswith("_ms") and name != "slowest_batch_ms"
            if stage and isinstance(value, int | float):
                totals[name] = totals.get(name, 0.0) + value
    costs = {name.removesuffix("_ms"): round(ms * 1000 / records, 2) for name, ms in totals.items()}
    batches = sum(int(line.get("batches", 0)) for line in lines)
    costs["batches"] = batches
    costs["records_per_batch"] = round(records / batches, 1)
    return costs


def loops(*, exactly_once: bool) -> dict[str, Loop]:
    """The loops of one round, in the order they run (``None`` ones are reported missing)."""
    found: dict[str, Loop] = {
        "bare_librdkafka": _rdkafka,
        "bare_aiokafka": _aiokafka,
        "quix_streams": _quix,
        "router_at_least_once": _router(),  # the defaults: decisions through the decisions topic
        # The opt-out, for the decisions topic's cost (#14); "true" here would repeat the default.
        "router_decisions_in_memory": _router(ALERTYARD_ROUTER_DECISIONS_VIA_TOPIC="false"),
    }
    if exactly_once:
        found["router_exactly_once"] = _router(ALERTYARD_ROUTER_EXACTLY_ONCE="true")
    return found
