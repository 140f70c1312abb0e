"""``alertyard serve tokens``: the HTTP API, the invalidation listener, the outbox relay to the
audit topic and the periodic expiry sweep, in one process."""

from __future__ import annotations

import asyncio
import contextlib
import os

import uvicorn
from prometheus_client import REGISTRY

from services.tokens._base import EVENT_SOURCE
from services.tokens.api import create_app
from services.tokens.service import TokenService
from services.tokens.validator import build_validator
from shared.kafka import ensure_topics, wait_for_kafka
from shared.logging import configure_logging, get_logger
from shared.outbox import OutboxMetrics, OutboxRelay, make_relay_producer
from shared.redis import make_redis
from shared.settings.tokens import TokensSettings, load

__all__ = ["serve"]

log = get_logger(__name__)


def serve() -> None:
    """Run the token service until interrupted (settings from ``ALERTYARD_*``)."""
    settings = load()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run(settings))


async def _sweep(service: TokenService, interval_s: float) -> None:
    while True:
        try:
            expired = await service.expire_due_tokens()
            if expired:
                log.info("tokens_expired", count=expired)
        except Exception as exc:  # an outage: the next sweep tries again
            log.warning("token_expiry_sweep_failed", error=type(exc).__name__)
        await asyncio.sleep(interval_s)


async def run(settings: TokensSettings) -> None:
    redis = make_redis(settings.redis_url)
    validator = build_validator(settings, redis)
    service = TokenService(redis, settings)
    await wait_for_kafka(settings.kafka_bootstrap_servers)
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [settings.topics.audit],
        partitions=settings.topics.partitions,
        replication_factor=settings.topics.replication_factor,
    )
    producer = make_relay_producer(
        settings.kafka_bootstrap_servers, request_timeout_s=settings.outbox_request_timeout_s
    )
    await producer.start()
    relay = OutboxRelay(
        redis,
        producer,
        source=EVENT_SOURCE,
        topic=settings.topics.audit,
        owner=f"tokens-{os.getpid()}",
        request_timeout_s=settings.outbox_request_timeout_s,
        metrics=OutboxMetrics(REGISTRY),
    )
    await validator.start()
    tasks = [
        asyncio.create_task(relay.run(), name="outbox-relay"),
        asyncio.create_task(_sweep(service, settings.expiry_sweep_interval_s), name="sweep"),
    ]
    app = create_app(service=service, validator=validator, settings=settings)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host=settings.http_host, port=settings.http_port, log_config=None, access_log=False
        )
    )
    log.info("tokens_service_started", host=settings.http_host, port=settings.http_port)
    try:
        await server.serve()
    finally:
        relay.stop()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await validator.stop()
        await producer.stop()
        await redis.aclose()
        log.info("tokens_service_stopped")
