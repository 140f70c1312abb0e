"""End to end: token changes made through the token API land in the audit log exactly once,
in order, with the actor and token id; the audit API serves them to audit:read only."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from services.audit.app import build_app
from services.audit.verify import verify_log
from services.tokens.app import create_app
from services.tokens.service import TokenService
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.outbox import OutboxRelay
from shared.tokens.validator import build_validator
from tests.integration.audit.conftest import Pipeline

pytestmark = [pytest.mark.kafka, pytest.mark.redis]


async def test_token_lifecycle_through_the_api_is_audited(
    redis: Redis, redis_url: str, pipeline: Pipeline
) -> None:
    settings = test_settings(redis_url)
    admin_secret, admin = await issue_token(redis, settings, kind="user", role="admin")
    reader_secret, _ = await issue_token(
        redis, settings, kind="global", permissions=[Permission.audit_read]
    )
    outsider_secret, _ = await issue_token(
        redis, settings, kind="global", permissions=[Permission.alerts_publish]
    )
    assert admin.user_id is not None

    validator = build_validator(settings, redis)
    await validator.start()
    tokens_app = create_app(
        service=TokenService(redis, settings), validator=validator, settings=settings
    )
    auth = {"authorization": f"Bearer {admin_secret}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=tokens_app), base_url="http://tokens"
    ) as tokens_api:
        created = await tokens_api.post(
            "/v1/tokens",
            json={"kind": "global", "name": "ci", "permissions": ["alerts:publish"]},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        token_id = created.json()["token"]["id"]
        rotated = await tokens_api.post(
            f"/v1/tokens/{token_id}/rotate", json={"grace_s": 0}, headers=auth
        )
        assert rotated.status_code == 200, rotated.text
        revoked = await tokens_api.post(f"/v1/tokens/{token_id}/revoke", headers=auth)
        assert revoked.status_code == 200, revoked.text
    secrets = [created.json()["secret"], rotated.json()["secret"], admin_secret]

    # The token service's outbox relay, in-process, publishes to this test's audit topic.
    relay = OutboxRelay(redis, pipeline.producer, source="tokens", topic=pipeline.topic)
    while await relay.relay_once():
        pass
    audit_log = pipeline.open_log()
    try:
        await pipeline.consume_until(audit_log, lambda _: audit_log.head_seq >= relay.published)
        assert audit_log.head_seq == relay.published
        app = build_app(
            validator=validator,
            log_dir=pipeline.log_dir,
            public_key=audit_log.public_key,
            gaps=audit_log.gaps,
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://audit"
        ) as audit_api:
            reader = {"authorization": f"Bearer {reader_secret}"}
            mine = await audit_api.get(
                "/v1/audit/events", params={"actor": admin.user_id}, headers=reader
            )
            assert mine.status_code == 200, mine.text
            records = mine.json()["records"]
            assert [r["event"]["type"] for r in records] == [
                "token.created",
                "token.rotated",
                "token.revoked",
            ]
            for record in records:
                event = record["event"]
                assert event["actor"] == {
                    "user_id": admin.user_id,
                    "token_id": admin.token_id,
                    "kind": "user",
                }
                assert event["subject"] == f"token/{token_id}"
                assert event["data"]["token_id"] == token_id
            assert [r["event"]["sequence"] for r in records] == sorted(
                r["event"]["sequence"] for r in records
            )

            about = await audit_api.get(
                "/v1/audit/events", params={"token_id": token_id}, headers=reader
            )
            assert [r["seq"] for r in about.json()["records"]] == [r["seq"] for r in records]

            paged: list[int] = []
            cursor: str | None = None
            while True:
                params: dict[str, str | int] = {"actor": admin.user_id, "limit": 2}
                if cursor:
                    params["cursor"] = cursor
                page = (
                    await audit_api.get("/v1/audit/events", params=params, headers=reader)
                ).json()
                paged.extend(r["seq"] for r in page["records"])
                if (cursor := page["next_cursor"]) is None:
                    break
            assert paged == [r["seq"] for r in records]
            bad = await audit_api.get("/v1/audit/events", params={"cursor": "x"}, headers=reader)
            assert (bad.status_code, bad.json()["code"]) == (422, "audit_invalid_cursor")

            gaps = (await audit_api.get("/v1/audit/gaps", headers=reader)).json()
            assert gaps["missing_total"] == 0
            verified = (await audit_api.get("/v1/audit/verify", headers=reader)).json()
            assert verified["ok"] is True

            assert (await audit_api.get("/v1/audit/events")).status_code == 401
            outsider = {"authorization": f"Bearer {outsider_secret}"}
            forbidden = await audit_api.get("/v1/audit/events", headers=outsider)
            assert forbidden.status_code == 403
            assert forbidden.json()["code"] == "forbidden"
    finally:
        audit_log.close()
        await validator.stop()

    everything = b"".join(
        p.read_bytes() for p in sorted(pipeline.log_dir.rglob("*")) if p.is_file()
    )
    for secret in secrets:
        assert secret.encode() not in everything
    assert verify_log(pipeline.log_dir, audit_log.public_key).ok
