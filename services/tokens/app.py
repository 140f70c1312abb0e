"""The token service's HTTP app and its lifespan (what runs beside the API in one process)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI
from redis.asyncio import Redis

from services.asyncapi import render_asyncapi
from services.keyspace_migration import migrate_at_start
from services.tokens._base import EVENT_SOURCE
from services.tokens.api import add_routes, document_ttl_limit
from services.tokens.metrics import TokensMetrics
from services.tokens.service import TokenService
from shared.api_docs import serve_docs_offline
from shared.asyncapi_route import add_asyncapi_route
from shared.hardening import harden_http
from shared.http import add_operational_routes, add_request_logging, install_error_handlers
from shared.http_auth import FailedAuthLimiter
from shared.kafka import ensure_topics, wait_for_kafka
from shared.logging import get_logger
from shared.outbox import OutboxRelay, make_relay_producer, outbox_key
from shared.redis import make_redis
from shared.settings.tokens import TokensSettings
from shared.tokens.validator import RedisTokenValidator, build_validator

__all__ = ["Readiness", "TokensRuntime", "create_app", "lifespan", "sweep_once"]

log = get_logger(__name__)

Readiness = Callable[[], Awaitable[dict[str, bool]]]


def create_app(
    *,
    service: TokenService,
    validator: RedisTokenValidator,
    settings: TokensSettings,
    metrics: TokensMetrics | None = None,
    readiness: Readiness | None = None,
) -> FastAPI:
    """The token service's FastAPI app; the caller runs the validator's listener (see
    :func:`lifespan`)."""
    app = FastAPI(
        title="alertyard tokens",
        version="0.1.0",
        description="Scoped API tokens (global, team, user), users, teams and roles.",
    )
    app.state.validator = validator
    app.state.auth_limiter = FailedAuthLimiter.from_settings(settings)
    serve_docs_offline(app)
    install_error_handlers(app)

    async def default_readiness() -> dict[str, bool]:
        try:
            redis_ok = await service.ping()
        except Exception:  # readiness reports, it does not raise
            redis_ok = False
        return {"redis": redis_ok, "invalidation_listener": validator.listening}

    registry = (metrics or TokensMetrics()).registry
    add_operational_routes(app, readiness=readiness or default_readiness, registry=registry)
    add_asyncapi_route(app, render_asyncapi)
    harden_http(app)  # before the request log, so it logs what hardening refused
    add_request_logging(app)
    add_routes(app, service, validator)
    document_ttl_limit(app, settings.max_ttl_s)
    return app


@dataclass(frozen=True, slots=True)
class TokensRuntime:
    """What :func:`lifespan` started: the pieces the HTTP app is built from."""

    redis: Redis
    service: TokenService
    validator: RedisTokenValidator
    metrics: TokensMetrics


async def sweep_once(service: TokenService, redis: Redis, metrics: TokensMetrics) -> None:
    """One expiry sweep (emits ``token.expired``) and a sample of the outbox backlog."""
    try:
        expired = await service.expire_due_tokens()
        metrics.outbox.backlog.labels(source=EVENT_SOURCE).set(
            await redis.xlen(outbox_key(EVENT_SOURCE))
        )
    except Exception as exc:  # an outage: the next sweep tries again
        metrics.expiry_sweeps.labels(outcome="failed").inc()
        log.warning("token_expiry_sweep_failed", error=type(exc).__name__)
        return
    metrics.expiry_sweeps.labels(outcome="ok").inc()
    metrics.tokens_expired.inc(expired)
    if expired:
        log.info("tokens_expired", count=expired)


async def _sweep_forever(
    service: TokenService, redis: Redis, metrics: TokensMetrics, interval_s: float
) -> None:
    while True:
        await sweep_once(service, redis, metrics)
        await asyncio.sleep(interval_s)  # a period between sweeps, not a synchronisation


@contextlib.asynccontextmanager
async def lifespan(
    settings: TokensSettings, metrics: TokensMetrics | None = None
) -> AsyncIterator[TokensRuntime]:
    """Start Redis, the validator's invalidation listener, the outbox relay to the audit topic
    and the expiry sweep; stop them all on exit."""
    metrics = metrics or TokensMetrics()
    redis = make_redis(settings.redis_url)
    validator = build_validator(settings, redis, metrics=metrics)
    service = TokenService(redis, settings)
    await migrate_at_start(redis)  # keys of a Redis written before the cluster-safe layout
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
        metrics=metrics.outbox,
    )
    await validator.start()
    tasks = [
        asyncio.create_task(relay.run(), name="outbox-relay"),
        asyncio.create_task(
            _sweep_forever(service, redis, metrics, settings.expiry_sweep_interval_s),
            name="expiry-sweep",
        ),
    ]
    try:
        yield TokensRuntime(redis=redis, service=service, validator=validator, metrics=metrics)
    finally:
        relay.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await validator.stop()
        await producer.stop()
        await redis.aclose()
