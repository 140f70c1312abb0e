"""Two router processes in one group over 12 partitions; the second joins mid-stream.

Incremental rebalancing (cooperative-sticky by default, or KIP-848 with
``ALERTYARD_ROUTER_GROUP_PROTOCOL=consumer``): the first router gives up only the partitions the
second is to take and keeps routing the rest (its log never shows a revoke that left it with
nothing); nothing is lost. Waits on log lines and collected records, never on time.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from services.rules.engine.model import Ruleset
from services.tokens.testing import test_settings
from tests._waiting import eventually
from tests.integration._processes import listen_socket, start_service, wait_ready
from tests.integration.router._harness import (
    Collector,
    router_process_env,
    router_settings,
    seed_rules_and_token,
    send_stream,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

RULESET = Ruleset.model_validate(
    {"rules": [{"name": "all", "owner_team": "ops", "destinations": ["ops"], "fallback": True}]}
)
SENT = 6_000
PARTITIONS = 12


def _events(log: Path, event: str) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if f'"{event}"' in line:
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
async def test_second_router_joins_mid_stream_first_keeps_its_other_partitions(
    protocol: str, kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    tokens = test_settings(redis_url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    settings = router_settings(kafka_bootstrap, redis_url)
    topics = settings.topics.model_copy(update={"partitions": PARTITIONS})
    settings = settings.model_copy(update={"topics": topics})
    topic = topics.team_topic("ops")
    collector = Collector(kafka_bootstrap, [topic])
    await collector.start()
    procs: list[subprocess.Popen[bytes]] = []
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b")}

    async def start_router(name: str) -> None:
        sock = listen_socket()
        port = sock.getsockname()[1]
        env = router_process_env(
            settings,
            tokens,
            port=port,
            ALERTYARD_ROUTER_BATCH_MAX_RECORDS="200",
            ALERTYARD_ROUTER_GROUP_PROTOCOL=protocol,
        )
        proc = start_service("router", env, logs[name], sock=sock)
        procs.append(proc)
        await wait_ready(port, proc)
        sock.close()

    ids = [uuid.uuid4().hex for _ in range(SENT)]
    try:
        await start_router("a")
        producing = asyncio.create_task(
            send_stream(kafka_bootstrap, topics.alerts, ids, token=token, pause_s=0.3)
        )
        await collector.wait_for(lambda: len(collector.records[topic]) >= SENT // 10, within=120)
        await start_router("b")  # ready = it has partitions: the rebalance happened
        await eventually(
            lambda: _events(logs["a"], "partitions_revoked"),
            what="the first router gave partitions up",
        )
        assert not producing.done(), "the stream ended before the second router joined"
        await producing
        await collector.wait_for(
            lambda: len({r.key for r in collector.records[topic]}) >= SENT, within=120
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        await collector.stop()

    keys = Counter(r.key.decode() for r in collector.records[topic])
    lost = [i for i in ids if i not in keys]
    revokes = _events(logs["a"], "partitions_revoked")
    mid_stream = revokes[:-1]  # the last one is a's own shutdown
    given_up = sum(len(r["partitions"]) for r in mid_stream)
    b_got = sum(len(e["partitions"]) for e in _events(logs["b"], "partitions_assigned"))
    print(
        f"\nDRILL two-router rebalance ({protocol}): sent={SENT} delivered={len(keys)} "
        f"duplicated={sum(n - 1 for n in keys.values())} lost={len(lost)} "
        f"a gave up {given_up} of {PARTITIONS} in {len(mid_stream)} revoke(s), b got {b_got}"
    )
    assert not lost
    assert mid_stream, "the first router was never asked to give a partition up"
    assert all(r["kept"] > 0 for r in mid_stream), "a mid-stream revoke took everything"
    assert 0 < given_up < PARTITIONS
