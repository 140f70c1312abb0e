"""Fixtures for the token service tests: real Redis (db from REDIS_URL), real validators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from services.tokens.service import TokenService
from services.tokens.testing import test_settings
from shared.settings.tokens import TokensSettings
from shared.tokens.validator import RedisTokenValidator, build_validator

StartValidator = Callable[..., Awaitable[RedisTokenValidator]]


@pytest.fixture
def settings(redis_url: str) -> TokensSettings:
    return test_settings(redis_url)


@pytest.fixture
def service(redis: Redis, settings: TokensSettings) -> TokenService:
    return TokenService(redis, settings)


@pytest.fixture
async def start_validator(redis: Redis, settings: TokensSettings) -> AsyncIterator[StartValidator]:
    """Starts validators (listening for invalidations) and stops them after the test."""
    started: list[RedisTokenValidator] = []

    async def start(client: Redis | None = None, **overrides: object) -> RedisTokenValidator:
        validator = build_validator(settings.model_copy(update=overrides), client or redis)
        await validator.start()
        assert validator.listening
        started.append(validator)
        return validator

    yield start
    for validator in started:
        await validator.stop()
