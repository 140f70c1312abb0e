"""``alertyard serve ingest`` as a real process: ready, accepts a webhook, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import httpx
import pytest

from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.redis import make_redis
from tests.integration._processes import free_port, start_service, wait_ready
from tests.integration.ingest._payloads import am_alert, am_webhook

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


async def test_serve_ingest_process(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> None:
    redis = make_redis(redis_url)
    tokens = test_settings(redis_url)
    token, _ = await issue_token(
        redis, tokens, kind="global", permissions=[Permission.alerts_publish]
    )
    await redis.aclose()
    port = free_port()
    env = {
        **os.environ,
        "ALERTYARD_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ALERTYARD_REDIS_URL": redis_url,
        "ALERTYARD_TOKENS_HMAC_SECRET": tokens.hmac_secret.get_secret_value(),
        "ALERTYARD_TOPIC_ALERTS": f"serve-{uuid.uuid4().hex[:8]}.alerts",
        "ALERTYARD_INGEST_HTTP_PORT": str(port),
        "ALERTYARD_LOG_FORMAT": "json",
    }
    log = tmp_path / "ingest.log"
    proc = start_service("ingest", env, log)
    try:
        await wait_ready(port, proc)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            answer = await http.post(
                "/v1/ingest/alertmanager",
                json=am_webhook(am_alert()),
                headers={"authorization": f"Bearer {token}"},
            )
        assert answer.status_code == 202, answer.text
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "ingest_started" in text
    assert "ingest_stopped" in text
    assert token not in text
