"""A rolling upgrade: the stand-alone indexer (``python -m services.router.indexer``) indexes
``batch-v2`` rows, ``batch-v1`` records and the one-decision records of older routers from one
decisions topic, with the bodies the router itself would have written."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import orjson
import pytest
from redis.asyncio import Redis

from services.router.decision_batch import encode_batch
from services.router.decision_log import (
    BATCH_FORMAT,
    FORMAT_HEADER,
    MEMBER_HEADER,
    ROWS_FORMAT,
    SCOPES_HEADER,
)
from services.router.decisions import DecisionRecord, DecisionStore, decisions_key
from services.router.engine import _decision_batch, _decisions
from services.router.indexer_process import indexer_env
from services.router.intake import Inbound
from services.router.plan import BatchPlan, PlannedAlert
from shared.alert import Alert
from shared.auth import Principal, TokenKind
from shared.kafka import ensure_topics, make_producer
from shared.kafka_native import Delivered
from shared.keyspace import decision_shard
from tests._waiting import eventually
from tests.integration._processes import ROOT
from tests.integration.router._harness import router_settings

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


def _decided(prefix: str, count: int) -> tuple[BatchPlan, list[Delivered]]:
    principal = Principal(token_id="tok1", kind=TokenKind.global_, permissions=frozenset())
    plan, placed = BatchPlan(), []
    for n in range(count):
        alert = Alert(id=f"{prefix}-{n}", source="test", summary=f"broke {n}", service="db")
        placed.append(Delivered("t.team.dba", 0, n))
        planned = PlannedAlert(
            Inbound("alerts", 1, n, None, b""), alert, principal, ("dba",), ("r1",), 2, False
        )
        planned.message_indexes.append(n)
        plan.accepted.append(planned)
    return plan, placed


async def test_the_standalone_indexer_reads_every_format(
    kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    settings = router_settings(kafka_bootstrap, redis_url)
    topic = settings.topics.decisions
    await ensure_topics(kafka_bootstrap, [topic], partitions=settings.topics.partitions)
    at = datetime.now(UTC)
    v2_plan, v2_placed = _decided("v2", 50)
    v1_plan, v1_placed = _decided("v1", 20)
    expected: list[DecisionRecord] = [
        *_decisions(v2_plan, v2_placed, at, at),
        *_decisions(v1_plan, v1_placed, at, at),
    ]
    single = _decisions(*_decided("v0", 1), at, at)[0]
    expected.append(single)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        for value in encode_batch(_decision_batch(v2_plan, v2_placed, at, at)):
            await producer.send_and_wait(topic, value, headers=[(FORMAT_HEADER, ROWS_FORMAT)])
        rows = [tuple(r) for r in _decisions(v1_plan, v1_placed, at, at)]
        await producer.send_and_wait(
            topic, orjson.dumps(rows), headers=[(FORMAT_HEADER, BATCH_FORMAT)]
        )
        await producer.send_and_wait(
            topic,
            single.body.encode(),
            key=single.alert_id.encode(),
            headers=[
                (MEMBER_HEADER, single.member.encode()),
                (SCOPES_HEADER, "\n".join(single.scopes).encode()),
            ],
        )
    finally:
        await producer.stop()

    log = tmp_path / "indexer.log"
    proc = _start_indexer({**indexer_env(settings), "ALERTYARD_LOG_FORMAT": "json"}, log)
    try:
        store = DecisionStore(redis, retention_s=3600)
        keys = [record.alert_id for record in expected]

        async def all_indexed() -> bool:
            return None not in await store.get_many(keys)

        await eventually(all_indexed, what="every format indexed", within=60, every=0.2)
        for record in expected:
            shard_hash = decisions_key(decision_shard(record.alert_id))
            raw = cast(bytes | None, await redis.hget(shard_hash, record.alert_id))
            assert raw is not None
            assert raw.decode() == record.member[:13] + record.body  # received ms, then the row
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
    assert code == 0, log.read_text()[-2000:]
    assert '"event": "decision_indexer_started"' in log.read_text()


def _start_indexer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.router.indexer"],  # stand-alone: no parent flag
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,  # EOF at once: only a child follows its stdin
            stdout=out,
            stderr=subprocess.STDOUT,
        )
