"""Lifecycle events reach the audit topic in order, name the actor, and never carry a secret;
the secret appears in no log line, error body or metric either."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from services.tokens._base import EVENT_SOURCE
from services.tokens.app import create_app
from services.tokens.errors import ChangeNotRecordedError
from services.tokens.service import TokenService
from services.tokens.testing import issue_token
from shared.auth import Permission, TokenKind
from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.outbox import OutboxRelay, outbox_key
from shared.redis import make_redis
from shared.settings.tokens import TokensSettings
from shared.teams import TEAMS_KEY
from shared.tokens import keys
from shared.tokens.validator import build_validator
from tests.integration.tokens._proxy import TcpProxy

pytestmark = [pytest.mark.redis, pytest.mark.kafka]


async def test_lifecycle_events_on_the_audit_topic_without_secrets(
    redis: Redis, settings: TokensSettings, kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    admin_raw, admin = await issue_token(redis, settings, kind="user", role="owner")
    await redis.delete(outbox_key(EVENT_SOURCE))  # keep only this test's lifecycle below
    validator = build_validator(settings, redis)
    app = create_app(service=TokenService(redis, settings), validator=validator, settings=settings)
    secrets_seen = [admin_raw]
    transport = httpx.ASGITransport(app=app)
    headers = {"authorization": f"Bearer {admin_raw}"}
    bodies: list[str] = []
    with capture_logs() as logs:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            created = await http.post(
                "/v1/tokens",
                headers=headers,
                json={"kind": "global", "name": "ci", "permissions": ["alerts:publish"]},
            )
            token_id = created.json()["token"]["id"]
            secrets_seen.append(created.json()["secret"])
            rotated = await http.post(
                f"/v1/tokens/{token_id}/rotate", headers=headers, json={"grace_s": 30}
            )
            secrets_seen.append(rotated.json()["secret"])
            bodies.append((await http.post(f"/v1/tokens/{token_id}/revoke", headers=headers)).text)
            for bad in secrets_seen[1:]:
                bodies.append((await http.get("/v1/tokens", headers={"authorization": bad})).text)
                response = await http.get("/v1/tokens", headers={"authorization": f"Bearer {bad}"})
                bodies.append(response.text)
                bodies.append((await http.get("/v1/tokens", headers={"x": bad})).text)
            bodies.append((await http.get("/metrics")).text)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    service = TokenService(redis, settings, clock=lambda: an_hour_ago)  # backdated
    old = await service.create_token(
        kind=TokenKind.global_,
        name="old",
        actor=None,
        permissions=[Permission.alerts_read],
        expires_in_s=60,
    )
    secrets_seen.append(old.raw)
    assert await TokenService(redis, settings).expire_due_tokens() == 1

    topic = unique("audit")
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        relay = OutboxRelay(redis, producer, source=EVENT_SOURCE, topic=topic)
        while await relay.relay_once():
            pass
    finally:
        await producer.stop()
    consumer = make_consumer(kafka_bootstrap, topic, group_id=unique("g"))
    await consumer.start()
    raw_events: list[bytes] = []
    try:
        while len(raw_events) < 5:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "events did not arrive"
            raw_events.extend(r.value for rs in batch.values() for r in rs)
    finally:
        await consumer.stop()
    events = [json.loads(e) for e in raw_events]
    assert [e["type"] for e in events] == [
        "token.created",
        "token.rotated",
        "token.revoked",
        "token.created",
        "token.expired",
    ]
    sequences = [e["sequence"] for e in events]
    assert sequences == sorted(sequences)
    assert len(set(sequences)) == len(sequences)
    assert events[0]["actor"] == {
        "user_id": admin.user_id,
        "token_id": admin.token_id,
        "kind": "user",
    }
    assert events[0]["subject"] == f"token/{token_id}"
    assert events[4]["actor"]["kind"] == "system"

    record = await redis.get(keys.token_key(token_id))
    assert record is not None
    digests = json.loads(record)
    hashes = [digests["digest"], digests["previous_digest"]]
    everything = [
        *raw_events,
        *(json.dumps(entry, default=str).encode() for entry in logs),
        *(b.encode() for b in bodies),
        record,
    ]
    for secret in secrets_seen:
        assert not any(secret.encode() in blob for blob in everything), "a secret leaked"
    for digest in hashes:
        assert not any(digest.encode() in blob for blob in raw_events), "a hash leaked into events"
    assert any(entry.get("event") == "http_request" for entry in logs)


async def test_change_fails_clearly_when_it_cannot_be_recorded(
    redis: Redis, settings: TokensSettings, redis_url: str
) -> None:
    """Redis unreachable at EXEC time: neither the change nor its event is written."""
    host, port = redis_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    client = make_redis(f"redis://127.0.0.1:{proxy.port}/{redis_url.rsplit('/', 1)[1]}")
    try:
        await proxy.cut()
        with pytest.raises(ChangeNotRecordedError) as err:
            await TokenService(client, settings).create_team(name="red", actor=None)
        assert (err.value.code, err.value.retriable) == ("change_not_recorded", True)
    finally:
        await client.aclose()
    assert not await redis.exists(TEAMS_KEY)
    assert await redis.xlen(outbox_key(EVENT_SOURCE)) == 0
