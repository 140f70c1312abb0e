"""kill -9 of ``alertyard serve tokens`` while it relays lifecycle events, repeated: every event
staged in the outbox still reaches the audit topic (at least once, each sequence number present).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from services.tokens.service import TokenService
from services.tokens.testing import test_settings
from shared.auth import Permission, TokenKind
from shared.kafka import ensure_topics, make_consumer
from shared.outbox import outbox_key
from tests.integration.router._harness import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
TOKENS = 240
KILLS = 3


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "serve", "tokens"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"tokens service exited with {proc.returncode}"
            try:
                if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("tokens service did not become ready")


async def test_kill_9_of_the_relay_loses_no_event(
    kafka_bootstrap: str,
    redis_url: str,
    redis: Redis,
    unique: Callable[[str], str],
    tmp_path: Path,
) -> None:
    topic = unique("audit")
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    settings = test_settings(redis_url)
    port = free_port()
    env = {
        **os.environ,
        "ALERTYARD_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ALERTYARD_REDIS_URL": redis_url,
        "ALERTYARD_TOPIC_AUDIT": topic,
        "ALERTYARD_TOKENS_HTTP_PORT": str(port),
        "ALERTYARD_TOKENS_HMAC_SECRET": settings.hmac_secret.get_secret_value(),
        "ALERTYARD_LOG_FORMAT": "json",
    }
    log = tmp_path / "tokens.log"
    service = TokenService(redis, settings)
    created: list[str] = []

    proc = _start(env, log)
    try:
        await _wait_ready(port, proc)
        per_round = TOKENS // KILLS
        for _ in range(KILLS):
            # Changes keep coming while the relay runs; kill it without warning mid-stream.
            for _ in range(per_round):
                made = await service.create_token(
                    kind=TokenKind.global_,
                    name=f"t{len(created)}",
                    actor=None,
                    permissions=[Permission.alerts_publish],
                )
                created.append(made.token.id)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            proc = _start(env, log)
            await _wait_ready(port, proc)

        # A killed relay's lease (10 s) must lapse before the new process takes over.
        for _ in range(150):
            if not await redis.xlen(outbox_key("tokens")):
                break
            await asyncio.sleep(0.2)
        assert await redis.xlen(outbox_key("tokens")) == 0, "the restarted relay did not drain"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)

    consumer = make_consumer(kafka_bootstrap, topic, group_id=unique("check"))
    await consumer.start()
    events: list[dict[str, object]] = []
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=3000)
            if not batch:
                break
            events.extend(json.loads(r.value) for rs in batch.values() for r in rs)
    finally:
        await consumer.stop()

    subjects = {str(e["subject"]) for e in events if e["type"] == "token.created"}
    assert subjects == {f"token/{token_id}" for token_id in created}
    sequences = sorted({int(str(e["sequence"])) for e in events})
    assert sequences == list(range(1, TOKENS + 1)), "a sequence number is missing"
    # At least once: a kill between Kafka's ack and the trim may resend a batch, nothing more.
    assert len(events) - TOKENS <= KILLS * 500
    assert "ayg_" not in log.read_text()
