"""Running the ingest app in-process on a bound port, with the real Kafka and Redis."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from redis.asyncio import Redis

from services.ingest.api import IngestContext
from services.ingest.app import create_app
from services.ingest.publisher import AlertPublisher
from services.ingest.ratelimit import TokenRateLimiter
from services.tokens.testing import test_settings
from shared.kafka import ensure_topics, make_producer
from shared.serving import http_server
from shared.settings import IngestSettings, TopicSettings
from shared.tokens.validator import build_validator


def ingest_settings(bootstrap: str, redis_url: str, **overrides: Any) -> IngestSettings:
    tag = uuid.uuid4().hex[:10]
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "redis_url": redis_url,
        "topics": TopicSettings(
            alerts=f"i-{tag}.alerts",
            team_prefix=f"i-{tag}.team.",
            unrouted=f"i-{tag}.unrouted",
            rejected=f"i-{tag}.rejected",
            partitions=3,
        ),
        "rate_limit": "",
        "produce_timeout_s": 5.0,
    }
    values.update(overrides)
    return IngestSettings.model_validate(values)


@contextlib.asynccontextmanager
async def running_ingest(
    settings: IngestSettings, redis: Redis, **producer_options: Any
) -> AsyncIterator[str]:
    """The ingest app served on a port bound here; yields its base URL."""
    await ensure_topics(settings.kafka_bootstrap_servers, [settings.topics.alerts], partitions=3)
    validator = build_validator(test_settings(settings.redis_url), redis)
    producer = make_producer(settings.kafka_bootstrap_servers, linger_ms=2, **producer_options)
    await producer.start()
    await validator.start()
    context = IngestContext(
        settings,
        validator=validator,
        publisher=AlertPublisher(
            producer, settings.topics.alerts, timeout_s=settings.produce_timeout_s
        ),
        limiter=TokenRateLimiter(settings.rate_limit, settings.rate_limit_storage),
    )
    try:
        async with serve_app(create_app(settings, context=context)) as url:
            yield url
    finally:
        await validator.stop()
        await producer.stop()


@contextlib.asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = http_server(app, host="127.0.0.1", port=port)
    started = asyncio.Event()
    original_startup = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original_startup(sockets)
        started.set()

    server.startup = startup  # type: ignore[method-assign]  # to await "listening", not poll
    async with app.router.lifespan_context(app):
        task = asyncio.create_task(server.serve(sockets=[sock]))
        await asyncio.wait(
            {task, asyncio.create_task(started.wait())}, return_when="FIRST_COMPLETED"
        )
        if task.done():
            task.result()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task
    sock.close()
