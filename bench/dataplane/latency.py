"""End-to-end latency at a steady 2,000 alerts/s: the bare librdkafka loop and the router
process, each in its own process on fresh topics, measured by bench_router's paced producer
and team-topic reader (send time carried in the alert, arrival time at the reader)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from typing import Any

from bench.bench_router import _measure_latency
from bench.dataplane.router_proc import ROOT, start_router
from bench.dataplane.workload import TEAMS, Workload, new_topics
from shared.kafka import ensure_topics

__all__ = ["BATCH_TIMEOUT_MS", "latency"]

BATCH_TIMEOUT_MS = 5
"""Both loops wait at most this long for a batch to fill (bench_router's latency setting)."""

_FIGURES = ("p50_ms", "p99_ms", "max_ms", "rate_sent_per_s", "alerts")


async def latency(work: Workload, mode: str, **extra: str) -> dict[str, Any]:
    """``mode``: ``bare`` (the librdkafka loop) or ``router``."""
    topics = new_topics(6)
    team_topics = [topics.team_topic(t) for t in TEAMS]
    await ensure_topics(work.bootstrap, [topics.alerts, *team_topics], partitions=6)
    if mode == "bare":
        spec = {
            "bootstrap": work.bootstrap,
            "group": f"dp-lat-bare-{uuid.uuid4().hex[:8]}",
            "topics": topics.model_dump(),
            "batch_timeout_s": BATCH_TIMEOUT_MS / 1000,
        }
        child = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
            [sys.executable, "-m", "bench.dataplane.bare_confluent", json.dumps(spec)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            line = await asyncio.to_thread(child.stdout.readline)
            if line.strip() != "ready":
                raise RuntimeError(f"bare loop did not start: {line!r}")
            figures = await _measure_latency(
                work.bootstrap, topics.alerts, team_topics, work.publish_token
            )
        finally:
            assert child.stdin is not None
            child.stdin.close()
            await asyncio.to_thread(child.wait, 30)
    else:
        router = start_router(
            work, topics, ALERTYARD_ROUTER_BATCH_TIMEOUT_MS=str(BATCH_TIMEOUT_MS), **extra
        )
        try:
            await router.wait_ready()
            figures = await _measure_latency(
                work.bootstrap, topics.alerts, team_topics, work.publish_token
            )
        finally:
            await asyncio.to_thread(router.stop)
    return {k: figures[k] for k in _FIGURES}
