"""With the broker down, ingest answers 503 and Alertmanager's retries deliver everything once
it is back. The broker is a throwaway one (see tests/integration/_throwaway_broker.py), killed
and restarted on its data directory; the shared test broker is never touched."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.kafka import wait_for_kafka
from shared.redis import make_redis
from tests._waiting import eventually
from tests.integration._throwaway_broker import ThrowawayBroker
from tests.integration.ingest._alertmanager import alertmanager, post_alerts, webhook_config
from tests.integration.ingest._harness import ingest_settings, running_ingest
from tests.integration.router._harness import Collector

# 900 s: the first run on a fresh machine also builds Alertmanager (go build).
pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(900)]


def _unavailable_answers() -> float:
    value = REGISTRY.get_sample_value(
        "alertyard_ingest_refused_total", {"endpoint": "alertmanager", "reason": "unavailable"}
    )
    return value or 0.0


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[ThrowawayBroker]:
    broker = ThrowawayBroker(tmp_path / "kafka")
    broker.format()
    broker.start()
    try:
        await wait_for_kafka(broker.bootstrap, timeout_s=120)
        yield broker
    finally:
        broker.stop()


async def test_alertmanager_retries_deliver_everything_after_an_outage(
    broker: ThrowawayBroker, redis_url: str, tmp_path: Path
) -> None:
    redis = make_redis(redis_url)
    token, _ = await issue_token(
        redis, test_settings(redis_url), kind="global", permissions=[Permission.alerts_publish]
    )
    token_file = tmp_path / "token"
    token_file.write_text(token)
    settings = ingest_settings(broker.bootstrap, redis_url, produce_timeout_s=1.0)
    started = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    alerts = [
        {
            "labels": {"alertname": f"Outage{i}", "service": "checkout", "severity": "low"},
            "annotations": {"summary": f"alert {i}"},
            "startsAt": started,
        }
        for i in range(5)
    ]
    try:
        async with running_ingest(settings, redis, request_timeout_ms=1000) as ingest_url:
            config = webhook_config(f"{ingest_url}/v1/ingest/alertmanager", token_file)
            async with alertmanager(tmp_path / "am", config) as am_url:
                before = _unavailable_answers()
                broker.stop()
                async with httpx.AsyncClient(base_url=ingest_url) as http:
                    direct = await http.post(
                        "/v1/ingest/alerts",
                        content=b'{"source": "probe", "summary": "during the outage"}',
                        headers={"authorization": f"Bearer {token}"},
                    )
                    ready = await http.get("/readyz")
                assert direct.status_code == 503
                assert direct.json()["code"] == "unavailable"
                assert direct.headers["retry-after"] == str(settings.retry_after_s)
                assert ready.status_code == 503  # kafka: false until a produce succeeds
                await post_alerts(am_url, alerts)
                await eventually(
                    lambda: _unavailable_answers() > before, what="a 503 to Alertmanager"
                )
                broker.start()
                await wait_for_kafka(broker.bootstrap, timeout_s=120)
                collector = Collector(broker.bootstrap, [settings.topics.alerts])
                await collector.start()
                try:

                    def names() -> set[str]:
                        return {
                            json.loads(r.value)["labels"].get("alertname", "")
                            for r in collector.records.get(settings.topics.alerts, [])
                        }

                    await collector.wait_for(
                        lambda: {f"Outage{i}" for i in range(5)} <= names(), within=120
                    )
                finally:
                    await collector.stop()
    finally:
        await redis.aclose()
    bodies = [
        json.loads(r.value)
        for r in collector.records[settings.topics.alerts]
        if json.loads(r.value)["source"] != "probe"  # the direct request may land later too
    ]
    assert {b["severity"] for b in bodies} == {"info"}
    # Retried webhooks carry the same alert ids: duplicates are recognisable, never new alerts.
    assert len({b["id"] for b in bodies}) == 5
