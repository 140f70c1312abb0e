"""Drill (#14): the audit service and the tokens service's outbox relay killed -9 repeatedly
mid-stream: no lifecycle event lost, none twice in the log, the hash chain verifies.

Counts events staged, on the audit topic (the relay may repeat a batch), in the log, lost.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from redis.asyncio import Redis

from services.audit.query import AuditQuery, query_log
from services.audit.segments import complete_lines, list_segments
from services.audit.signing import PUBLIC_KEY_FILE, load_public_key
from services.audit.verify import verify_log
from services.tokens.service import TokenService
from services.tokens.testing import test_settings
from shared.auth import Permission, TokenKind
from shared.kafka import ensure_topics, make_consumer
from shared.outbox import outbox_key
from tests.integration._processes import free_port, start_service, wait_ready

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.drill]

ROUNDS = 3
PER_ROUND = 100


def _logged(log_dir: Path) -> int:
    return sum(len(complete_lines(p.read_bytes())) for _, p in list_segments(log_dir))


async def _topic_events(bootstrap: str, topic: str, group: str) -> list[dict[str, Any]]:
    """Everything on the one-partition topic, up to its high watermark."""
    consumer = make_consumer(bootstrap, topic, group_id=group)
    await consumer.start()
    tp = TopicPartition(topic, 0)
    try:
        end = (await consumer.end_offsets([tp]))[tp]
        events: list[dict[str, Any]] = []
        while len(events) < end:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "the topic ended before its high watermark"
            events.extend(json.loads(r.value) for rs in batch.values() for r in rs)
        return events
    finally:
        await consumer.stop()


@pytest.mark.timeout(400)
async def test_audit_and_relay_killed_repeatedly_lose_no_event(
    kafka_bootstrap: str,
    redis_url: str,
    redis: Redis,
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    topic = unique("audit-drill")
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    settings = test_settings(redis_url)
    log_dir = tmp_path / "audit"
    common = {
        "ALERTYARD_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ALERTYARD_REDIS_URL": redis_url,
        "ALERTYARD_TOPIC_AUDIT": topic,
        "ALERTYARD_TOKENS_HMAC_SECRET": settings.hmac_secret.get_secret_value(),
        "ALERTYARD_LOG_FORMAT": "json",
    }
    tokens_port, audit_port = free_port(), free_port()
    tokens_env = {
        **os.environ,
        **common,
        "ALERTYARD_TOKENS_HTTP_PORT": str(tokens_port),
        "ALERTYARD_OUTBOX_REQUEST_TIMEOUT_S": "2",  # lease 9 s: a killed relay's lapses soon
    }
    audit_env = {
        **os.environ,
        **common,
        "ALERTYARD_AUDIT_HTTP_PORT": str(audit_port),
        "ALERTYARD_AUDIT_LOG_DIR": str(log_dir),
        "ALERTYARD_AUDIT_GROUP_ID": unique("audit-drill-g"),
        "ALERTYARD_AUDIT_BATCH_MAX_RECORDS": "20",
    }
    service = TokenService(redis, settings)
    created: list[str] = []

    def start_both() -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
        return (
            start_service("tokens", tokens_env, tmp_path / "tokens.log"),
            start_service("audit", audit_env, tmp_path / "audit.log"),
        )

    tokens_proc, audit_proc = start_both()
    try:
        await wait_ready(tokens_port, tokens_proc)
        await wait_ready(audit_port, audit_proc)
        for _ in range(ROUNDS):
            for _ in range(PER_ROUND):  # changes keep coming while both run
                made = await service.create_token(
                    kind=TokenKind.global_,
                    name=f"t{len(created)}",
                    actor=None,
                    permissions=[Permission.alerts_publish],
                )
                created.append(made.token.id)
            for proc in (tokens_proc, audit_proc):  # mid-stream, without warning
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
            tokens_proc, audit_proc = start_both()
            await wait_ready(tokens_port, tokens_proc)
            await wait_ready(audit_port, audit_proc)
        async with asyncio.timeout(120):  # the relay's lease lapses, the backlog drains
            for _ in itertools.count():
                if not await redis.xlen(outbox_key("tokens")) and _logged(log_dir) >= len(created):
                    break
                await asyncio.sleep(0.2)  # polling the services' progress
    finally:
        for proc in (tokens_proc, audit_proc):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (tokens_proc, audit_proc):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    on_topic = await _topic_events(kafka_bootstrap, topic, unique("count"))
    page = query_log(log_dir, AuditQuery(), limit=len(created) * 3)
    logged = Counter(r.event.subject for r in page.records if r.event.type == "token.created")
    lost = [t for t in created if f"token/{t}" not in logged]
    report = verify_log(log_dir, load_public_key(log_dir / PUBLIC_KEY_FILE))
    print(
        f"\nDRILL audit-relay-kill9 x{ROUNDS}: staged={len(created)} on_topic={len(on_topic)}"
        f" logged={sum(logged.values())} duplicated_in_log={sum(n - 1 for n in logged.values())}"
        f" lost={len(lost)} chain_ok={report.ok}"
    )
    assert not lost
    assert all(n == 1 for n in logged.values()), "an event is in the log twice"
    assert report.ok, report.problems
