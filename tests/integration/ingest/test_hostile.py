"""Hostile bodies get a 4xx with a reason, never a crash; the service keeps serving."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.ingest._payloads import am_alert, am_webhook
from tests.integration.ingest.conftest import IngestEnv

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

_DEEP = b'{"alerts": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
_NESTED = {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {"j": "deep"}}}}}}}}}}
_MANY = json.dumps(am_webhook(*[am_alert(fingerprint=f"f{i}") for i in range(10_000)])).encode()

CASES = {
    "huge": (b"{" + b" " * (4 * 1024 * 1024 + 10) + b"}", 413, "payload_too_large"),
    "10,000 alerts": (_MANY, 413, "payload_too_large"),
    "deep": (_DEEP, 400, "invalid_payload"),
    "too deep for the contract": (
        json.dumps(am_webhook({**am_alert(), "annotations": _NESTED})).encode(),
        400,
        "invalid_payload",
    ),
    "bad utf-8": (b'{"alerts": ["\xff\xfe"]}', 400, "invalid_payload"),
    "not json": (b"<xml/>", 400, "invalid_payload"),
    "empty": (b"", 400, "invalid_payload"),
    "alerts not a list": (b'{"version": "4", "alerts": "x"}', 400, "invalid_payload"),
    "labels a list": (
        json.dumps(am_webhook({**am_alert(), "labels": ["a"]})).encode(),
        400,
        "invalid_payload",
    ),
    "status a number": (
        json.dumps(am_webhook({**am_alert(), "status": 7})).encode(),
        400,
        "invalid_payload",
    ),
    "label value a number": (
        json.dumps(am_webhook({**am_alert(), "labels": {"alertname": 5}})).encode(),
        400,
        "invalid_payload",
    ),
    "empty webhook": (json.dumps(am_webhook()).encode(), 400, "invalid_payload"),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_webhook_gets_a_4xx(ingest_env: IngestEnv, name: str) -> None:
    body, status, code = CASES[name]
    headers = {"authorization": f"Bearer {ingest_env.token}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=ingest_env.url, timeout=30) as http:
        answer = await http.post("/v1/ingest/alertmanager", content=body, headers=headers)
        healthy = await http.get("/healthz")
    assert answer.status_code == status, answer.text[:300]
    assert answer.json()["code"] == code
    assert healthy.status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"\xff" * 100, b"[" * 3000, b'{"source": 1, "summary": []}', b"[1, 2, 3]", b"null"],
    ids=["bad utf-8", "deep", "wrong types", "not objects", "null"],
)
async def test_hostile_native_and_pagerduty_bodies_get_400(
    ingest_env: IngestEnv, body: bytes
) -> None:
    headers = {"authorization": f"Bearer {ingest_env.token}"}
    async with httpx.AsyncClient(base_url=ingest_env.url) as http:
        native = await http.post("/v1/ingest/alerts", content=body, headers=headers)
        pagerduty = await http.post("/v2/enqueue", content=body)
    assert native.status_code == 400, native.text
    assert native.json()["code"] == "invalid_payload"
    assert pagerduty.status_code in (400, 401), pagerduty.text  # no routing_key: 401
    assert pagerduty.json()["status"] in ("invalid event", "unauthorized")


async def test_a_good_request_still_passes_after_the_hostile_ones(ingest_env: IngestEnv) -> None:
    headers = {"authorization": f"Bearer {ingest_env.token}"}
    async with httpx.AsyncClient(base_url=ingest_env.url) as http:
        answer = await http.post(
            "/v1/ingest/alertmanager", json=am_webhook(am_alert()), headers=headers
        )
    assert answer.status_code == 202
