"""kill -9 of ``alertyard serve tokens`` while it relays lifecycle events, repeated: every event
staged in the outbox still reaches the audit topic (at least once, each sequence number present).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.tokens.service import TokenService
from services.tokens.testing import test_settings
from shared.auth import Permission, TokenKind
from shared.kafka import ensure_topics, make_consumer
from shared.outbox import outbox_key
from tests.integration._processes import listen_socket, start_service, wait_ready

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
TOKENS = 240
KILLS = 3


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
    sock = listen_socket()  # held for the whole test: restarts serve on the same port
    port = sock.getsockname()[1]
    env = {
        **os.environ,
        "ALERTYARD_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ALERTYARD_REDIS_URL": redis_url,
        "ALERTYARD_TOPIC_AUDIT": topic,
        "ALERTYARD_TOKENS_HMAC_SECRET": settings.hmac_secret.get_secret_value(),
        "ALERTYARD_LOG_FORMAT": "json",
        # A 2 s request timeout: a killed relay's lease (2 x 2 + 5 s) lapses within the wait.
        "ALERTYARD_OUTBOX_REQUEST_TIMEOUT_S": "2",
    }
    log = tmp_path / "tokens.log"
    service = TokenService(redis, settings)
    created: list[str] = []

    proc = start_service("tokens", env, log, sock=sock)
    try:
        await wait_ready(port, proc)
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
            await asyncio.to_thread(proc.wait, 10)
            proc = start_service("tokens", env, log, sock=sock)
            await wait_ready(port, proc)

        # A killed relay's lease (9 s) must lapse before the new process takes over.
        for _ in range(150):
            if not await redis.xlen(outbox_key("tokens")):
                break
            await asyncio.sleep(0.2)
        assert await redis.xlen(outbox_key("tokens")) == 0, "the restarted relay did not drain"
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 20)

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
