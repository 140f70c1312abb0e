"""The three ingest endpoints against the real Kafka and Redis: what comes out of the alerts
topic, what is refused and how."""

from __future__ import annotations

import json
import warnings
from typing import Any

import httpx
import pytest

from services.tokens.service import TokenService
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.headers import bearer_token
from tests.integration.ingest._harness import ingest_settings, running_ingest
from tests.integration.ingest._payloads import am_alert, am_webhook
from tests.integration.ingest.conftest import IngestEnv

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _records_for(env: IngestEnv, ids: list[str]) -> list[dict[str, Any]]:
    wanted = set(ids)
    found = {}
    for record in env.collector.records.get(env.settings.topics.alerts, []):
        body = json.loads(record.value)
        if body["id"] in wanted:
            found[body["id"]] = (body, record)
    return [found[i][0] for i in ids if i in found]


async def _wait_ids(env: IngestEnv, ids: list[str]) -> list[dict[str, Any]]:
    await env.collector.wait_for(lambda: len(_records_for(env, ids)) == len(ids))
    return _records_for(env, ids)


async def test_alertmanager_webhook_becomes_alerts_with_the_callers_token(
    ingest_env: IngestEnv,
) -> None:
    webhook = am_webhook(
        am_alert(fingerprint="aaaa000000000001"),
        am_alert("DiskFull", severity="PAGE", service="", job="node", fingerprint="b1"),
    )
    async with httpx.AsyncClient(base_url=ingest_env.url) as http:
        answer = await http.post(
            "/v1/ingest/alertmanager", json=webhook, headers=_auth(ingest_env.token)
        )
    assert answer.status_code == 202, answer.text
    ids = answer.json()["alert_ids"]
    assert answer.json()["accepted"] == 2
    first, second = await _wait_ids(ingest_env, ids)
    assert first["dedup_key"] == "aaaa000000000001"
    assert first["severity"] == "error"
    assert first["labels"]["severity_original"] == "high"
    assert first["summary"] == "HighLatency on checkout"
    assert first["service"] == "checkout"
    assert first["status"] == "firing"
    assert first["ends_at"] is None
    assert first["starts_at"].startswith("2026-12-01T09:00:00.123456")
    assert first["payload"] == {
        "externalURL": "http://alertmanager:9093",
        "groupKey": '{}:{alertname="HighLatency"}',
        "receiver": "alertyard",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": "aaaa000000000001",
    }
    assert second["severity"] == "critical"
    assert second["service"] == "node"
    records = [
        r
        for r in ingest_env.collector.records[ingest_env.settings.topics.alerts]
        if json.loads(r.value)["id"] in ids
    ]
    assert {r.key for r in records} == {b"aaaa000000000001", b"b1"}
    assert all(bearer_token(r.headers) == ingest_env.token for r in records)


async def test_grafana_webhook_is_accepted_as_a_superset(ingest_env: IngestEnv) -> None:
    alert = {**am_alert(fingerprint="9f00"), "silenceURL": "http://grafana/s", "values": {"A": 1}}
    alert["annotations"] = {"description": "p99 above 2s"}
    webhook = am_webhook(alert, orgId=1, title="[FIRING:1]", state="alerting", message="m")
    async with httpx.AsyncClient(base_url=ingest_env.url) as http:
        answer = await http.post(
            "/v1/ingest/alertmanager", json=webhook, headers=_auth(ingest_env.token)
        )
    assert answer.status_code == 202, answer.text
    (body,) = await _wait_ids(ingest_env, answer.json()["alert_ids"])
    assert body["source"] == "grafana"
    assert body["summary"] == "p99 above 2s"
    assert body["payload"]["silenceURL"] == "http://grafana/s"


@pytest.mark.parametrize(
    ("body", "content_type", "count"),
    [
        (b'{"source": "ci", "summary": "build red", "severity": "low"}', "application/json", 1),
        (
            b'[{"source": "ci", "summary": "a"}, {"source": "ci", "summary": "b"}]',
            "application/json",
            2,
        ),
        (
            b'{"source": "ci", "summary": "a"}\n{"source": "ci", "summary": "b"}\n'
            b'{"source": "ci", "summary": "c", "severity": "none"}\n',
            "application/x-ndjson",
            3,
        ),
    ],
    ids=["object", "array", "ndjson"],
)
async def test_native_alerts_as_object_array_or_ndjson(
    ingest_env: IngestEnv, body: bytes, content_type: str, count: int
) -> None:
    headers = {**_auth(ingest_env.token), "content-type": content_type}
    async with httpx.AsyncClient(base_url=ingest_env.url) as http:
        answer = await http.post("/v1/ingest/alerts", content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    assert answer.json()["accepted"] == count
    alerts = await _wait_ids(ingest_env, answer.json()["alert_ids"])
    assert all(a["severity"] in ("warning", "info") for a in alerts)


async def test_pagerduty_client_library_triggers_and_resolves(ingest_env: IngestEnv) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pdpyras announces its successor on import
        import pdpyras  # type: ignore[import-untyped]  # ships no type information

    def drive() -> tuple[str, str]:
        session = pdpyras.EventsAPISession(ingest_env.token)
        session.url = ingest_env.url
        dedup_key = session.trigger(
            "Disk full on db-1",
            "db-1.example.com",
            severity="error",
            payload={"component": "postgres", "group": "db", "class": "disk"},
            custom_details={"free_bytes": 0},
        )
        resolved = session.resolve(dedup_key)
        return dedup_key, resolved

    import asyncio

    dedup_key, resolved = await asyncio.to_thread(drive)
    assert dedup_key
    assert resolved == dedup_key
    topic = ingest_env.settings.topics.alerts

    def both() -> list[dict[str, Any]]:
        return [
            json.loads(r.value)
            for r in ingest_env.collector.records.get(topic, [])
            if r.key == dedup_key.encode()
        ]

    await ingest_env.collector.wait_for(lambda: len(both()) == 2)
    trigger, resolve = both()
    assert trigger["status"] == "firing"
    assert resolve["status"] == "resolved"
    assert trigger["service"] == "postgres"
    assert trigger["source"] == "db-1.example.com"
    assert trigger["labels"] == {"group": "db", "class": "disk", "event_action": "trigger"}
    assert trigger["payload"]["custom_details"] == {"free_bytes": 0}


async def test_pagerduty_responses_follow_the_events_api(ingest_env: IngestEnv) -> None:
    event = {
        "routing_key": ingest_env.token,
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "critical"},
    }
    async with httpx.AsyncClient(base_url=ingest_env.url) as http:
        ok = await http.post("/v2/enqueue", json=event)
        missing = await http.post("/v2/enqueue", json={**event, "payload": {"summary": "s"}})
        long_key = await http.post("/v2/enqueue", json={**event, "dedup_key": "k" * 256})
        unknown = await http.post("/v2/enqueue", json={**event, "routing_key": "ayg_" + "x" * 50})
        huge = await http.post("/v2/enqueue", content=b" " * (512 * 1024 + 1))
    assert ok.status_code == 202
    assert ok.json()["status"] == "success"
    assert ok.json()["message"] == "Event processed"
    assert len(ok.json()["dedup_key"]) == 32
    assert missing.status_code == 400
    assert missing.json()["status"] == "invalid event"
    assert "'payload.source' is missing or blank" in missing.json()["errors"]
    assert long_key.status_code == 400
    assert unknown.status_code == 401
    assert ingest_env.token not in unknown.text
    assert huge.status_code == 413


async def test_the_token_is_checked_before_anything_is_produced(
    ingest_env: IngestEnv, redis_url: str
) -> None:
    tokens = test_settings(redis_url)
    revoked, principal = await issue_token(
        ingest_env.redis, tokens, kind="global", permissions=[Permission.alerts_publish]
    )
    await TokenService(ingest_env.redis, tokens).revoke_token(
        token_id=principal.token_id, actor=None
    )
    webhook = am_webhook(am_alert(fingerprint="never"))
    cases = {
        "missing": {},
        "malformed": {"authorization": "Token abc"},
        "forged": _auth("ayg_" + "A" * 48),
        "unknown": _auth("not-a-token"),
        "revoked": _auth(revoked),
        "no permission": _auth(ingest_env.read_only_token),
    }
    async with httpx.AsyncClient(base_url=ingest_env.url) as http:
        answers = {
            name: await http.post("/v1/ingest/alertmanager", json=webhook, headers=headers)
            for name, headers in cases.items()
        }
    statuses = {name: a.status_code for name, a in answers.items()}
    assert statuses == {
        "missing": 401,
        "malformed": 401,
        "forged": 401,
        "unknown": 401,
        "revoked": 401,
        "no permission": 403,
    }
    assert revoked not in json.dumps([a.text for a in answers.values()])
    topic = ingest_env.settings.topics.alerts
    assert not any(r.key == b"never" for r in ingest_env.collector.records.get(topic, []))


async def test_invalid_alerts_get_400_with_a_reason_per_alert(ingest_env: IngestEnv) -> None:
    good = am_alert(fingerprint="good-one")
    bad_status = {**am_alert(fingerprint="b2"), "status": "pending"}
    unmapped = am_alert(severity="sev-unknown-xyz", fingerprint="b3")
    too_many_labels = am_alert(fingerprint="b4", **{f"l{i}": "v" for i in range(70)})
    webhook = am_webhook(good, bad_status, unmapped, too_many_labels)
    async with httpx.AsyncClient(base_url=ingest_env.url) as http:
        answer = await http.post(
            "/v1/ingest/alertmanager", json=webhook, headers=_auth(ingest_env.token)
        )
    assert answer.status_code == 400
    body = answer.json()
    assert body["code"] == "invalid_payload"
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [
        (1, "schema_violation"),
        (2, "severity_unmapped"),
        (3, "schema_violation"),
    ]
    topic = ingest_env.settings.topics.alerts
    assert not any(r.key == b"good-one" for r in ingest_env.collector.records.get(topic, []))


async def test_rate_limit_per_token_answers_429_with_retry_after(
    ingest_env: IngestEnv, kafka_bootstrap: str, redis_url: str
) -> None:
    settings = ingest_settings(kafka_bootstrap, redis_url, rate_limit="2/hour")
    body = b'{"source": "ci", "summary": "x"}'
    async with (
        running_ingest(settings, ingest_env.redis) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        answers = [
            await http.post("/v1/ingest/alerts", content=body, headers=_auth(ingest_env.token))
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[2].json()["code"] == "rate_limited"
    assert 1 <= int(answers[2].headers["retry-after"]) <= 3600


async def test_health_readiness_and_metrics(ingest_env: IngestEnv) -> None:
    async with httpx.AsyncClient(base_url=ingest_env.url) as http:
        assert (await http.get("/healthz")).status_code == 200
        ready = await http.get("/readyz")
        metrics = await http.get("/metrics")
        openapi = await http.get("/openapi.json")
    assert ready.status_code == 200
    assert ready.json()["checks"]["kafka"] is True
    assert "alertyard_ingest_requests_total" in metrics.text
    assert {"/v1/ingest/alertmanager", "/v1/ingest/alerts", "/v2/enqueue"} <= set(
        openapi.json()["paths"]
    )
