"""The ingest service in-process on unique topics, tokens issued by the real token service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.redis import make_redis
from shared.settings import IngestSettings
from tests.integration.ingest._harness import ingest_settings, running_ingest
from tests.integration.router._harness import Collector


@dataclass
class IngestEnv:
    url: str
    settings: IngestSettings
    redis: Redis
    token: str
    token_id: str
    read_only_token: str
    collector: Collector


@pytest.fixture(scope="module")
async def ingest_env(kafka_bootstrap: str, redis_url: str) -> AsyncIterator[IngestEnv]:
    redis = make_redis(redis_url)
    await redis.flushdb()
    tokens = test_settings(redis_url)
    token, principal = await issue_token(
        redis, tokens, kind="global", permissions=[Permission.alerts_publish]
    )
    read_only, _ = await issue_token(
        redis, tokens, kind="global", permissions=[Permission.alerts_read]
    )
    settings = ingest_settings(kafka_bootstrap, redis_url)
    collector = Collector(kafka_bootstrap, [settings.topics.alerts])
    await collector.start()
    try:
        async with running_ingest(settings, redis) as url:
            yield IngestEnv(url, settings, redis, token, principal.token_id, read_only, collector)
    finally:
        await collector.stop()
        await redis.flushdb()
        await redis.aclose()
