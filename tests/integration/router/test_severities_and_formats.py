"""On the alerts topic: ``severity: high`` is routed (normalised), not rejected, and an
Alertmanager webhook published as a record is routed alert by alert (#10)."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from services.router.decisions import DecisionWriter
from services.router.engine import AlertRouter
from tests.integration.router._harness import (
    AlertSender,
    StaticRuleset,
    alert_body,
    router_settings,
)
from tests.integration.router.conftest import RULESET, RouterEnv

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


async def test_alias_severities_are_routed_with_the_canonical_value(router_env: RouterEnv) -> None:
    env, topics = router_env, router_env.settings.topics
    keys = {}
    for severity in ("high", "PAGE", "none"):
        key = f"sev-{severity}-{uuid.uuid4().hex[:8]}"
        keys[severity] = key.encode()
        body = alert_body(service="cache", severity=severity, dedup_key=key)
        await env.sender.send(body, token=env.publisher_token, key=key.encode())
    dba = topics.team_topic("dba")
    await env.collector.wait_for(lambda: all(env.collector.by_key(dba, k) for k in keys.values()))
    got = {s: json.loads(env.collector.by_key(dba, k)[0].value) for s, k in keys.items()}
    assert {s: a["severity"] for s, a in got.items()} == {
        "high": "error",
        "PAGE": "critical",
        "none": "info",
    }
    assert got["high"]["labels"]["severity_original"] == "high"
    assert not any(r.key in keys.values() for r in env.collector.records.get(topics.rejected, []))


async def test_alertmanager_webhook_record_is_routed_alert_by_alert(router_env: RouterEnv) -> None:
    env, topics = router_env, router_env.settings.topics
    tag = uuid.uuid4().hex[:8]
    webhook = {
        "version": "4",
        "receiver": "kafka",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Replication", "service": "db", "severity": "major"},
                "annotations": {"summary": "replica lag"},
                "startsAt": "2026-12-01T09:00:00.000000001Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": f"{tag}-1",
            },
            {
                "status": "resolved",
                "labels": {"alertname": "CacheMiss", "service": "cache"},
                "annotations": {},
                "startsAt": "2026-12-01T08:00:00Z",
                "endsAt": "2026-12-01T08:30:00Z",
                "fingerprint": f"{tag}-2",
            },
        ],
    }
    await env.sender.send(json.dumps(webhook).encode(), token=env.publisher_token)
    dba, sre = topics.team_topic("dba"), topics.team_topic("sre")
    first, second = f"{tag}-1".encode(), f"{tag}-2".encode()

    def arrived() -> bool:
        return bool(
            env.collector.by_key(dba, first)
            and env.collector.by_key(sre, first)
            and env.collector.by_key(dba, second)
        )

    await env.collector.wait_for(arrived)
    replication = json.loads(env.collector.by_key(dba, first)[0].value)
    assert replication["severity"] == "error"
    assert replication["summary"] == "replica lag"
    cache = json.loads(env.collector.by_key(dba, second)[0].value)
    assert cache["status"] == "resolved"
    assert cache["summary"] == "CacheMiss"


async def test_topic_bound_to_a_token_routes_header_less_records(
    router_env: RouterEnv, kafka_bootstrap: str, redis_url: str
) -> None:
    """Alertmanager's Kafka receiver writes v4 JSON without headers: a topic binding supplies
    the token, which the router still authenticates (here: a second router on a bound topic)."""
    env = router_env
    bound = f"t-{uuid.uuid4().hex[:10]}.am-kafka"
    settings = router_settings(
        kafka_bootstrap, redis_url, topic_tokens={bound: env.publisher_token}
    )
    settings = settings.model_copy(update={"topics": env.settings.topics})  # same outputs
    settings = settings.model_copy(update={"group_id": f"bound-{uuid.uuid4().hex[:8]}"})
    router = AlertRouter(
        settings,
        validator=env.validator,
        ruleset=StaticRuleset(RULESET),
        decisions=DecisionWriter(env.store, max_buffered=100),
    )
    await router.start()
    task = asyncio.create_task(router.run())
    tag = uuid.uuid4().hex[:8]
    webhook = {
        "version": "4",
        "receiver": "kafka",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "Bound", "service": "cache", "severity": "low"},
                "fingerprint": f"{tag}-bound",
            }
        ],
    }
    try:
        async with AlertSender(kafka_bootstrap, bound) as sender:
            await sender.send(json.dumps(webhook).encode(), token=None)  # no headers at all
        dba = env.settings.topics.team_topic("dba")
        key = f"{tag}-bound".encode()
        await env.collector.wait_for(lambda: bool(env.collector.by_key(dba, key)))
        alert = json.loads(env.collector.by_key(dba, key)[0].value)
        assert alert["severity"] == "info"
        assert alert["summary"] == "Bound"
    finally:
        await router.stop()
        await task
