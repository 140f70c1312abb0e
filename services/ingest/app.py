"""The ingest service's HTTP app: the ingest endpoints plus health, readiness and metrics.

``create_app(settings)`` builds its clients (Redis for tokens, a Kafka producer) in the
lifespan; tests hand in a ready :class:`IngestContext` instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.asyncapi import render_asyncapi
from services.ingest import metrics
from services.ingest.api import IngestContext, build_ingest_api
from services.ingest.errors import retry_headers
from services.ingest.publisher import AlertPublisher
from services.ingest.ratelimit import TokenRateLimiter
from shared.api_docs import serve_docs_offline
from shared.asyncapi_route import add_asyncapi_route
from shared.auth import redact_tokens
from shared.errors import AlertyardError
from shared.hardening import harden_http
from shared.http import add_operational_routes, add_request_logging, install_error_handlers
from shared.http_auth import FailedAuthLimiter
from shared.kafka import ensure_topics, make_producer, wait_for_kafka
from shared.redis import make_redis
from shared.settings import IngestSettings, TokensSettings
from shared.tokens.validator import build_validator

__all__ = ["create_app"]


def create_app(settings: IngestSettings, *, context: IngestContext | None = None) -> FastAPI:
    """The app; its lifespan starts (and stops) the clients unless ``context`` is given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if context is not None:
            app.state.ingest, app.state.validator = context, context.validator
            yield
            return
        async with _clients(settings) as built:
            app.state.ingest, app.state.validator = built, built.validator  # for shared.http_auth
            yield

    app = FastAPI(
        title="alertyard ingest",
        summary="Alertmanager / Grafana webhooks, PagerDuty Events v2 and native alerts over "
        "HTTP, produced to the alerts topic once Kafka acknowledged them.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.auth_limiter = FailedAuthLimiter.from_settings(settings)
    serve_docs_offline(app)
    install_error_handlers(app)
    _install_ingest_errors(app)
    # The outer guard only: the endpoints enforce max_body_bytes themselves, with the answer
    # each format's clients expect (PagerDuty's body for /v2/enqueue).
    harden_http(app, max_body_bytes=2 * settings.max_body_bytes)
    add_request_logging(app)

    async def readiness() -> dict[str, bool]:
        ingest: IngestContext | None = getattr(app.state, "ingest", None)
        return {"started": ingest is not None, "kafka": bool(ingest and ingest.publisher.kafka_ok)}

    add_operational_routes(app, readiness=readiness)
    add_asyncapi_route(app, render_asyncapi)
    app.include_router(build_ingest_api())
    return app


@contextlib.asynccontextmanager
async def _clients(settings: IngestSettings) -> AsyncIterator[IngestContext]:
    await wait_for_kafka(settings.kafka_bootstrap_servers)
    await ensure_topics(  # the router creates it too; whichever starts first
        settings.kafka_bootstrap_servers,
        [settings.topics.alerts],
        partitions=settings.topics.partitions,
        replication_factor=settings.topics.replication_factor,
    )
    redis = make_redis(settings.redis_url)
    validator = build_validator(
        TokensSettings(
            kafka_bootstrap_servers=settings.kafka_bootstrap_servers, redis_url=settings.redis_url
        ),
        redis,
    )
    producer = make_producer(
        settings.kafka_bootstrap_servers,
        linger_ms=settings.producer_linger_ms,
        request_timeout_ms=max(1000, int(settings.produce_timeout_s * 1000)),
    )
    await producer.start()
    await validator.start()
    try:
        yield IngestContext(
            settings,
            validator=validator,
            publisher=AlertPublisher(
                producer, settings.topics.alerts, timeout_s=settings.produce_timeout_s
            ),
            limiter=TokenRateLimiter(settings.rate_limit, settings.rate_limit_storage),
        )
    finally:
        await validator.stop()
        await producer.stop()
        await redis.aclose()


def _install_ingest_errors(app: FastAPI) -> None:
    """Our error bodies plus ``Retry-After`` on 429/503 and per-alert reasons on 400; every
    refusal is counted by endpoint and code (a middleware would cost every request more)."""

    @app.exception_handler(AlertyardError)
    async def _error(request: Request, exc: AlertyardError) -> JSONResponse:
        endpoint = _ENDPOINTS.get(request.url.path, "other")
        metrics.REFUSED.labels(endpoint, exc.code).inc()
        metrics.REQUESTS.labels(endpoint, exc.http_status).inc()
        body = exc.to_dict()
        body["detail"] = redact_tokens(body["detail"])
        default = _retry_after(request)
        return JSONResponse(
            status_code=exc.http_status,
            content=body,
            headers=retry_headers(exc, default_s=default),
        )


_ENDPOINTS = {
    "/v1/ingest/alertmanager": "alertmanager",
    "/v1/ingest/alerts": "alerts",
    "/v2/enqueue": "pagerduty",
}


def _retry_after(request: Request) -> int:
    ingest: IngestContext | None = getattr(request.app.state, "ingest", None)
    return ingest.settings.retry_after_s if ingest else 5
