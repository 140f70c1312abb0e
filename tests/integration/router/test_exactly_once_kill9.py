"""Exactly-once mode (``ALERTYARD_ROUTER_EXACTLY_ONCE``): a router process killed -9 mid-stream
and restarted (same ``transactional.id``); a team consumer reading ``read_committed`` sees
every alert exactly once. A ``read_uncommitted`` reader shows the aborted copies that the
kill left behind (so the kill did land mid-transaction)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.rules.engine.model import Ruleset
from services.tokens.testing import test_settings
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
    {
        "rules": [
            {
                "name": "databases",
                "owner_team": "dba",
                "condition_groups": [
                    {"conditions": [{"field": "service", "operator": "equals", "value": "db"}]}
                ],
                "destinations": ["dba"],
            },
            {"name": "rest", "owner_team": "sre", "destinations": ["sre"], "fallback": True},
        ]
    }
)
SENT = 4_000


async def test_read_committed_consumer_sees_each_alert_once_across_kill9(
    kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    tokens = test_settings(redis_url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    settings = router_settings(kafka_bootstrap, redis_url)
    topics = settings.topics
    team_topics = [topics.team_topic("dba"), topics.team_topic("sre")]
    sock = listen_socket()  # held for the whole test: the restart serves on the same port
    port = sock.getsockname()[1]
    env = router_process_env(
        settings,
        tokens,
        port=port,
        ALERTYARD_ROUTER_BATCH_MAX_RECORDS="100",
        ALERTYARD_ROUTER_EXACTLY_ONCE="true",
        ALERTYARD_ROUTER_TRANSACTIONAL_ID=f"{settings.group_id}-eos-test",
        ALERTYARD_ROUTER_DECISIONS_VIA_TOPIC="true",
    )
    committed = Collector(kafka_bootstrap, team_topics)  # read_committed (shared.kafka)
    uncommitted = Collector(kafka_bootstrap, team_topics, isolation_level="read_uncommitted")
    await committed.start()
    await uncommitted.start()
    log = tmp_path / "router.log"
    proc = start_service("router", env, log, sock=sock)
    ids = [uuid.uuid4().hex for _ in range(SENT)]

    def seen(collector: Collector) -> Counter[str]:
        return Counter(r.key.decode() for t in team_topics for r in collector.records[t])

    try:
        await wait_ready(port, proc)
        producing = asyncio.create_task(
            send_stream(kafka_bootstrap, topics.alerts, ids, token=token, chunk=500)
        )
        await committed.wait_for(lambda: sum(seen(committed).values()) >= SENT // 4, within=60)
        proc.send_signal(signal.SIGKILL)  # mid-stream, mid-transaction
        await asyncio.to_thread(proc.wait, 10)
        await producing
        proc = start_service("router", env, log, sock=sock)
        await wait_ready(port, proc)
        await committed.wait_for(lambda: set(ids) <= set(seen(committed)), within=90)
        counts = seen(committed)
        raw = seen(uncommitted)
        duplicated = sum(counts.values()) - len(counts)
        print(
            f"DRILL exactly-once kill -9: sent {SENT}, delivered {len(counts)}, "
            f"duplicated {duplicated} (read_committed), "
            f"{sum(raw.values()) - len(raw)} aborted copies visible read_uncommitted"
        )
        assert set(counts) == set(ids)
        assert duplicated == 0, [i for i, n in counts.items() if n > 1][:5]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
        await committed.stop()
        await uncommitted.stop()
    assert code == 0, log.read_text()[-3000:]
