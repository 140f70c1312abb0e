"""The token service's /metrics: authentication outcomes, cache, outbox backlog, sweeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from services.tokens._base import EVENT_SOURCE
from services.tokens.app import create_app, sweep_once
from services.tokens.metrics import TokensMetrics
from services.tokens.service import TokenService
from services.tokens.testing import issue_token
from shared.auth import Permission, TokenKind
from shared.settings.tokens import TokensSettings
from shared.tokens.validator import build_validator

pytestmark = [pytest.mark.redis]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_count_outcomes_cache_backlog_and_sweeps(
    redis: Redis, settings: TokensSettings
) -> None:
    metrics = TokensMetrics()
    validator = build_validator(settings, redis, metrics=metrics)
    service = TokenService(redis, settings)
    app = create_app(service=service, validator=validator, settings=settings, metrics=metrics)
    reader, _ = await issue_token(redis, settings, permissions=[Permission.tokens_read])
    past = datetime.now(UTC) - timedelta(hours=1)
    old = await TokenService(redis, settings, clock=lambda: past).create_token(
        kind=TokenKind.global_,
        name="old",
        actor=None,
        permissions=[Permission.tokens_read],
        expires_in_s=60,
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tokens") as http:
        for _ in range(2):
            ok = await http.get("/v1/tokens", headers={"authorization": f"Bearer {reader}"})
            assert ok.status_code == 200
        expired = await http.get("/v1/tokens", headers={"authorization": f"Bearer {old.raw}"})
        assert expired.status_code == 401
        await sweep_once(TokenService(redis, settings), redis, metrics)
        text = (await http.get("/metrics")).text
    got = _samples(text)
    assert got[("alertyard_tokens_authentications_total", (("outcome", "ok"),))] >= 1
    assert got[("alertyard_tokens_authentications_total", (("outcome", "token_expired"),))] == 1
    assert got[("alertyard_tokens_cache_lookups_total", (("result", "hit"),))] >= 1
    assert got[("alertyard_tokens_cache_lookups_total", (("result", "miss"),))] >= 1
    assert got[("alertyard_tokens_expiry_sweeps_total", (("outcome", "ok"),))] == 1
    assert got[("alertyard_tokens_expired_total", ())] == 1
    # Nothing relays in this test: every staged event is still in the outbox.
    assert got[("alertyard_outbox_backlog", (("source", EVENT_SOURCE),))] >= 2
    assert reader not in text
    assert old.raw not in text
    await validator.stop()
