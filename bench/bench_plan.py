"""Per-record CPU of the router's planning and producing, on a 500-alert batch of the
data-plane workload (``bench_router``'s alerts and ruleset: 4 services, so 4 distinct inputs).

Loop-thread CPU time (``time.thread_time``: the machine is shared, wall time is not the
router's), best of several rounds, each figure next to a same-run baseline:

- ``evaluate``: ``evaluate_many`` (once per distinct input) against one ``evaluate`` per alert;
- ``plan``: ``plan_batch`` per alert (admission, evaluation, messages and headers);
- ``produce``: ``NativeProducer.produce_batch`` per copy against a bare ``produce`` of the same
  records without headers or delivery callback (librdkafka's own floor).

Environment: ``KAFKA_BOOTSTRAP_SERVERS`` (``produce`` is skipped without it).
"""

from __future__ import annotations

import asyncio
import os
import time
import timeit
from collections.abc import Callable
from typing import Any

from bench.bench_router import RULESET, _alert
from services.router.authn import AuthOutcome
from services.router.intake import inspect_record
from services.router.plan import plan_batch
from services.rules.engine.compiled import compile_ruleset
from services.rules.engine.scope import AlertSource
from shared.auth import Permission, Principal, TokenKind
from shared.kafka import ensure_topics
from shared.kafka_native import DeliveryBatch, NativeProducer, producer_config
from shared.settings import TopicSettings

__all__ = ["run"]

BATCH = 500
PARTITIONS = 6
ROUNDS = 7
TOPICS = TopicSettings(
    alerts="bench-plan.alerts",
    team_prefix="bench-plan.team.",
    unrouted="bench-plan.unrouted",
    rejected="bench-plan.rejected",
    partitions=PARTITIONS,
)


def _cpu_us(fn: Callable[[], object], per: int, number: int = 20) -> float:
    """Best loop-thread CPU time of ``fn`` in microseconds per item (``per`` items a call)."""
    runs = timeit.repeat(fn, number=number, repeat=ROUNDS, timer=time.thread_time)
    return round(min(runs) / number / per * 1e6, 3)


def _batch() -> tuple[list[Any], dict[str, AuthOutcome], Principal]:
    token = "bench-token"
    headers = [("authorization", f"Bearer {token}".encode())]
    inbounds = [
        inspect_record(
            TOPICS.alerts, n * PARTITIONS // BATCH, n, *_alert(n), headers, 1_700_000_000_000
        )
        for n in range(BATCH)
    ]
    principal = Principal(
        token_id="tok-bench",
        kind=TokenKind.global_,
        permissions=frozenset({Permission.alerts_publish}),
    )
    return inbounds, {token: principal}, principal


async def _produce(bootstrap: str, messages: list[Any]) -> dict[str, float]:
    await ensure_topics(bootstrap, sorted({m.topic for m in messages}), partitions=PARTITIONS)
    producer = NativeProducer(producer_config(bootstrap))
    loop = asyncio.get_running_loop()
    raw = producer._producer  # the bare floor: same records, no headers, no callback
    best: dict[str, float] = {
        "produce_batch_us_per_copy": float("inf"),
        "bare_produce_us": float("inf"),
    }
    try:
        for _ in range(ROUNDS):
            started = time.thread_time()
            delivery = DeliveryBatch(loop, len(messages))
            handed, _, _ = producer.produce_batch(messages, delivery, range(len(messages)))
            delivery.seal(handed)
            ours = (time.thread_time() - started) / len(messages) * 1e6
            await delivery.wait()
            started = time.thread_time()
            for topic, key, value, _headers in messages:
                raw.produce(topic, value, key)
            bare = (time.thread_time() - started) / len(messages) * 1e6
            await producer.flush(30)
            best["produce_batch_us_per_copy"] = min(best["produce_batch_us_per_copy"], ours)
            best["bare_produce_us"] = min(best["bare_produce_us"], bare)
    finally:
        await producer.close()
    return {k: round(v, 3) for k, v in best.items()}


def run() -> dict[str, Any]:
    inbounds, auth, principal = _batch()
    ruleset = compile_ruleset(RULESET)
    alerts = [i.alert for i in inbounds]
    sources = [AlertSource.of(principal)] * BATCH
    shared_us = _cpu_us(lambda: ruleset.evaluate_many(alerts, sources), BATCH)
    each_us = _cpu_us(
        lambda: [ruleset.evaluate(a, s) for a, s in zip(alerts, sources, strict=True)], BATCH
    )
    plan = plan_batch(inbounds, auth, ruleset, TOPICS)
    result: dict[str, Any] = {
        "batch": BATCH,
        "evaluate": {
            "evaluate_many_us_per_alert": shared_us,
            "one_evaluate_per_alert_us": each_us,
            "speedup": round(each_us / shared_us, 1),
        },
        "plan": {
            "plan_batch_us_per_alert": _cpu_us(
                lambda: plan_batch(inbounds, auth, ruleset, TOPICS), BATCH
            )
        },
    }
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap:
        produce = asyncio.run(_produce(bootstrap, plan.messages))
        produce["ratio_to_bare"] = round(
            produce["produce_batch_us_per_copy"] / produce["bare_produce_us"], 2
        )
        result["produce"] = produce
    return result
