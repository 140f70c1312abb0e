"""kill -9 of ``alertyard serve router`` mid-stream, restart: every alert reaches its team topic
at least once (duplicates only from the uncommitted batches)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from tests.integration._processes import listen_socket, start_service, wait_ready
from tests.integration.router._harness import (
    DBA_THEN_SRE,
    AlertSender,
    Collector,
    alert_body,
    router_process_env,
    router_settings,
    seed_rules_and_token,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
RULESET = DBA_THEN_SRE
TOTAL = 3000


async def test_kill_9_mid_stream_loses_nothing(
    kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    tokens = test_settings(redis_url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    settings = router_settings(kafka_bootstrap, redis_url)
    topics = settings.topics
    sock = listen_socket()  # held for the whole test: restarts serve on the same port
    port = sock.getsockname()[1]
    env = router_process_env(settings, tokens, port=port, ALERTYARD_ROUTER_BATCH_MAX_RECORDS="100")
    collector = Collector(kafka_bootstrap, [topics.team_topic("dba"), topics.team_topic("sre")])
    await collector.start()
    log = tmp_path / "router.log"
    proc = start_service("router", env, log, sock=sock)
    try:
        await wait_ready(port, proc)
        ids = [uuid.uuid4().hex for _ in range(TOTAL)]

        async def produce() -> None:
            async with AlertSender(kafka_bootstrap, topics.alerts) as sender:
                for start in range(0, TOTAL, 100):  # ~2,000 alerts/s, steady
                    chunk = ids[start : start + 100]
                    await sender.send_many(
                        (
                            (i.encode(), alert_body(id=i, service="db" if n % 2 else "web"))
                            for n, i in enumerate(chunk, start)
                        ),
                        token=token,
                    )
                    await asyncio.sleep(0.05)

        producing = asyncio.create_task(produce())
        await collector.wait_for(lambda: sum(collector.counts().values()) >= TOTAL // 4)
        proc.send_signal(signal.SIGKILL)  # mid-stream, no chance to drain or commit
        await asyncio.to_thread(proc.wait, 10)
        await producing
        proc = start_service("router", env, log, sock=sock)
        await wait_ready(port, proc)

        def received() -> set[str]:
            return {
                r.key.decode() for records in collector.records.values() for r in records if r.key
            }

        await collector.wait_for(lambda: set(ids) <= received(), within=60)
        total_copies = sum(collector.counts().values())
        assert total_copies >= TOTAL  # every alert at least once
        for n, alert_id in enumerate(ids):
            team = "dba" if n % 2 else "sre"
            assert collector.by_key(topics.team_topic(team), alert_id.encode()), alert_id
        # The served HTTP API answers lookups for what this process routed.
        reader, _ = await issue_token(
            redis, tokens, kind="global", permissions=[Permission.alerts_read]
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            headers = {"authorization": f"Bearer {reader}"}
            for _ in range(50):
                got = await http.get(f"/v1/alerts/{ids[-1]}", headers=headers)
                if got.status_code == 200:
                    break
                await asyncio.sleep(0.1)
            assert got.status_code == 200
            assert got.json()["teams"] == ["dba" if (TOTAL - 1) % 2 else "sre"]
            metrics = (await http.get("/metrics")).text
            assert "alertyard_router_alerts_in_total" in metrics
            assert token not in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = -9
        await collector.stop()
    assert code == 0, log.read_text()[-3000:]
