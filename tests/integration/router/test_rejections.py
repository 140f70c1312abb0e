"""One test per rejection reason: the message lands in the rejected topic, bytes untouched."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.tokens.service import TokenService
from services.tokens.testing import issue_token
from shared.alert import MAX_ALERT_BYTES
from shared.auth import Permission, TokenKind
from shared.headers import RejectedHeaders
from shared.tokens import keys
from shared.tokens.records import TokenRecord
from shared.tokens.token_format import TokenCodec
from tests.integration.router._harness import alert_body
from tests.integration.router.conftest import RouterEnv

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


async def _expect_rejected(
    env: RouterEnv,
    value: bytes,
    reason: str,
    *,
    token: str | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> RejectedHeaders:
    key = uuid.uuid4().hex.encode()
    await env.sender.send(value, token=token, key=key, headers=headers)
    rejected_topic = env.settings.topics.rejected
    await env.collector.wait_for(lambda: bool(env.collector.by_key(rejected_topic, key)))
    [record] = env.collector.by_key(rejected_topic, key)
    got = RejectedHeaders.from_kafka(record.headers)
    assert got.reason == reason, got
    assert record.value == value  # original bytes, untouched
    assert got.source_topic == env.settings.topics.alerts
    assert all(k != "authorization" for k, _ in record.headers)
    if token:
        assert token not in got.detail
    return got


async def test_missing_token(router_env: RouterEnv) -> None:
    await _expect_rejected(router_env, alert_body(), "missing_token", headers=[])


async def test_malformed_authorization_header(router_env: RouterEnv) -> None:
    token = router_env.publisher_token
    headers = [("authorization", f"Token {token}".encode())]
    got = await _expect_rejected(
        router_env, alert_body(), "malformed_authorization", headers=headers
    )
    assert token not in got.detail


async def test_unknown_token(router_env: RouterEnv) -> None:
    codec = TokenCodec(router_env.tokens.hmac_secret.get_secret_value().encode())
    unknown = codec.generate(TokenKind.global_)  # well-formed, never issued
    await _expect_rejected(router_env, alert_body(), "token_unknown", token=unknown)


async def test_forged_token(router_env: RouterEnv) -> None:
    real = router_env.publisher_token
    forged = real[:-1] + ("A" if real[-1] != "A" else "B")  # checksum no longer matches
    await _expect_rejected(router_env, alert_body(), "token_malformed", token=forged)


async def test_expired_token(router_env: RouterEnv) -> None:
    env = router_env
    raw, principal = await issue_token(
        env.redis, env.tokens, kind="global", permissions=[Permission.alerts_publish]
    )
    raw_record = await env.redis.get(keys.token_key(principal.token_id))
    assert isinstance(raw_record, bytes)
    stored = TokenRecord.model_validate_json(raw_record)
    past = stored.model_copy(update={"expires_at": datetime.now(UTC) - timedelta(seconds=1)})
    await env.redis.set(keys.token_key(principal.token_id), past.model_dump_json())
    await _expect_rejected(env, alert_body(), "token_expired", token=raw)


async def test_revoked_token(router_env: RouterEnv) -> None:
    env = router_env
    raw, principal = await issue_token(
        env.redis, env.tokens, kind="global", permissions=[Permission.alerts_publish]
    )
    await TokenService(env.redis, env.tokens).revoke_token(token_id=principal.token_id, actor=None)
    await _expect_rejected(env, alert_body(), "token_revoked", token=raw)


async def test_token_without_publish_permission(router_env: RouterEnv) -> None:
    env = router_env
    raw, _ = await issue_token(
        env.redis, env.tokens, kind="global", permissions=[Permission.alerts_read]
    )
    await _expect_rejected(env, alert_body(), "permission_denied", token=raw)


async def test_invalid_json(router_env: RouterEnv) -> None:
    await _expect_rejected(
        router_env, b'{"source": "x", summary', "invalid_json", token=router_env.publisher_token
    )


async def test_schema_violation(router_env: RouterEnv) -> None:
    body = b'{"source": "x", "summary": "y", "severity": 5}'
    got = await _expect_rejected(
        router_env, body, "schema_violation", token=router_env.publisher_token
    )
    assert "severity" in got.detail


async def test_severity_outside_the_table(router_env: RouterEnv) -> None:
    body = b'{"source": "x", "summary": "y", "severity": "apocalyptic"}'
    got = await _expect_rejected(
        router_env, body, "severity_unmapped", token=router_env.publisher_token
    )
    assert "apocalyptic" in got.detail


async def test_oversized(router_env: RouterEnv) -> None:
    body = alert_body(payload={"blob": "x" * (MAX_ALERT_BYTES + 10)})
    await _expect_rejected(router_env, body, "oversized", token=router_env.publisher_token)


async def test_invalid_utf8(router_env: RouterEnv) -> None:
    body = b'{"source": "x", "summary": "caf\xe9"}'
    await _expect_rejected(router_env, body, "invalid_utf8", token=router_env.publisher_token)
