"""Fixtures for real Kafka and Redis (see tests/_infra.py) and per-test isolation."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import structlog
from redis.asyncio import Redis

from shared.logging import configure_logging
from shared.redis import make_redis
from tests import _infra


def pytest_configure(config: pytest.Config) -> None:
    configure_logging("debug", "json")


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """CLI commands (and ``serve``) reconfigure logging process-wide; put it back after every
    test so a level or stream chosen by one test never leaks into the next."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with _infra.kafka_bootstrap_servers() as url:
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with _infra.redis_url() as url:
        yield url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on a clean database; flushed again afterwards."""
    client = make_redis(redis_url)
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Unique names (topics, groups) so tests never see each other's messages."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    return make
