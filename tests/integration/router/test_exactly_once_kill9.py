"""Exactly-once mode (``ALERTYARD_ROUTER_EXACTLY_ONCE``): a router process killed -9 mid-stream
and restarted (same ``transactional.id``); a team consumer reading ``read_committed`` sees
every alert exactly once. The kill lands inside an open transaction: the router is stopped
(SIGSTOP) until a team partition's last stable offset is seen below its high watermark, which
only an open transaction causes, and killed while stopped; a ``read_uncommitted`` reader shows
the copies the restart's ``init_transactions`` aborted."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._listoffsets import OffsetSpec
from redis.asyncio import Redis

from services.tokens.testing import test_settings
from tests.integration._processes import listen_socket, start_service, wait_ready
from tests.integration.router._harness import (
    DBA_THEN_SRE,
    Collector,
    router_process_env,
    router_settings,
    seed_rules_and_token,
    send_stream,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

RULESET = DBA_THEN_SRE
SENT = 4_000
STOP_ATTEMPTS = 200


def _open_transaction(admin: AdminClient, topics: list[str], partitions: int) -> bool:
    """True when some partition's last stable offset trails its high watermark."""
    tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]

    def latest(level: IsolationLevel) -> dict[tuple[str, int], int]:
        spec = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # untyped in the client
        futures = admin.list_offsets(dict.fromkeys(tps, spec), isolation_level=level)
        return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

    stable = latest(IsolationLevel.READ_COMMITTED)
    high = latest(IsolationLevel.READ_UNCOMMITTED)
    return any(stable[k] < high[k] for k in high)


async def _kill_inside_a_transaction(
    proc: subprocess.Popen[bytes], admin: AdminClient, topics: list[str], partitions: int
) -> None:
    """SIGSTOP the router until a transaction is caught open, then SIGKILL it while stopped
    (a stopped process cannot end the transaction it holds)."""
    for _ in range(STOP_ATTEMPTS):
        proc.send_signal(signal.SIGSTOP)
        if await asyncio.to_thread(_open_transaction, admin, topics, partitions):
            proc.send_signal(signal.SIGKILL)
            return
        proc.send_signal(signal.SIGCONT)
        await asyncio.sleep(0)  # yield to the collectors between attempts (not a wait)
    raise AssertionError(f"no open transaction caught in {STOP_ATTEMPTS} stops")


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
        admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
        partitions = settings.team_topic_partitions or topics.partitions
        await _kill_inside_a_transaction(proc, admin, team_topics, partitions)
        await asyncio.to_thread(proc.wait, 10)
        await producing
        proc = start_service("router", env, log, sock=sock)
        await wait_ready(port, proc)
        await committed.wait_for(lambda: set(ids) <= set(seen(committed)), within=90)
        await uncommitted.wait_for(lambda: set(ids) <= set(seen(uncommitted)), within=90)
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
