"""The ingest endpoints: Alertmanager / Grafana webhook, PagerDuty Events v2, native alerts.

Every request: token checked first (401/403; nothing is produced for a bad one), rate limit
per token (429), size limits (413), every alert converted or the request refused with one
reason per alert (400), then 202 only once Kafka acknowledged every record (503 while it
cannot). A request is all or nothing: a retry never half-duplicates it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, RootModel

from services.ingest import metrics
from services.ingest.errors import InvalidPayloadError, PayloadTooLargeError, retry_headers
from services.ingest.publisher import AlertPublisher
from services.ingest.ratelimit import TokenRateLimiter
from services.ingest.schemas import AlertmanagerWebhook, PagerDutyError, PagerDutyEvent
from shared.alert import MAX_ALERT_BYTES, Alert
from shared.api_errors import ERROR_DESCRIPTIONS, request_body
from shared.auth import Permission, Principal, TokenValidator, redact_tokens
from shared.errors import AlertyardError, ForbiddenError, UnauthenticatedError
from shared.formats import Problem, alertmanager, native, pagerduty
from shared.http_auth import require
from shared.reasons import INVALID_JSON, INVALID_UTF8, OVERSIZED
from shared.settings import IngestSettings
from shared.severity import SeverityTable

__all__ = ["AcceptedAlerts", "IngestContext", "PagerDutyAccepted", "build_ingest_api"]

_publisher = require(Permission.alerts_publish)


class AcceptedAlerts(BaseModel):
    """Every alert of the request was acknowledged by Kafka."""

    accepted: int
    alert_ids: list[str]
    """Ids of the produced alerts, in request order (``alertyard alerts get <id>``)."""
    topic: str


class PagerDutyAccepted(BaseModel):
    status: str = "success"
    message: str = "Event processed"
    dedup_key: str


NativeAlerts = RootModel[Alert | list[Alert]]
"""One alert or an array of them (NDJSON: one per line)."""


class IngestContext:
    """What the endpoints need, on ``app.state.ingest``."""

    def __init__(
        self,
        settings: IngestSettings,
        *,
        validator: TokenValidator,
        publisher: AlertPublisher,
        limiter: TokenRateLimiter,
        new_dedup_key: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.settings = settings
        self.validator = validator
        self.publisher = publisher
        self.limiter = limiter
        self.severities: SeverityTable = settings.severity.table()
        self.new_dedup_key = new_dedup_key


def _context(request: Request) -> IngestContext:
    context: IngestContext = request.app.state.ingest
    return context


Context = Annotated[IngestContext, Depends(_context)]
Publisher = Annotated[Principal, Depends(_publisher)]


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _load_json(body: bytes) -> Any:
    _load_utf8(body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayloadError(
            "body is not JSON", [Problem.of(None, INVALID_JSON, str(exc))]
        ) from None


def _bearer(request: Request) -> str:
    # Already validated by the ``require`` dependency: only the raw value is taken here.
    return request.headers["authorization"].strip().partition(" ")[2].strip()


def encode(results: list[Alert | Problem], limit: int) -> list[tuple[Alert, bytes]]:
    """``(alert, value)`` pairs ready to produce; raises 413/400 for the request as a whole."""
    check_count(len(results), limit)
    problems = [r for r in results if isinstance(r, Problem)]
    records = []
    for index, result in enumerate(results):
        if isinstance(result, Alert):
            value = result.to_bytes()
            if len(value) > MAX_ALERT_BYTES:
                detail = f"alert is {len(value)} bytes; the limit is {MAX_ALERT_BYTES}"
                problems.append(Problem.of(index, OVERSIZED, detail))
            records.append((result, value))
    if problems:
        problems.sort(key=lambda p: -1 if p.index is None else p.index)
        count = sum(1 for p in problems if p.index is not None)
        what = f"{count} of {len(results)} alerts are invalid" if count else "invalid body"
        raise InvalidPayloadError(f"{what}; nothing was produced", problems[:100])
    if not records:
        raise InvalidPayloadError("the request holds no alerts", [])
    return records


def check_count(count: int, limit: int) -> None:
    if count > limit:
        raise PayloadTooLargeError(
            f"{count} alerts in one request; the limit is {limit} (set max_alerts)", alerts=count
        )


async def _produce(
    context: IngestContext, endpoint: str, records: list[tuple[Alert, bytes]], token: str
) -> AcceptedAlerts:
    await context.publisher.publish(records, token)
    metrics.ALERTS_PRODUCED.labels(endpoint).inc(len(records))
    metrics.REQUESTS.labels(endpoint, 202).inc()
    return AcceptedAlerts(
        accepted=len(records),
        alert_ids=[alert.id for alert, _ in records],
        topic=context.publisher.topic,
    )


def build_ingest_api() -> APIRouter:
    router = APIRouter(tags=["ingest"])

    @router.post(
        "/v1/ingest/alertmanager",
        status_code=202,
        response_model=AcceptedAlerts,
        summary="Alertmanager webhook (payload version 4) or a Grafana webhook contact point",
        openapi_extra=request_body(AlertmanagerWebhook),
    )
    async def alertmanager_webhook(
        request: Request, principal: Publisher, context: Context
    ) -> AcceptedAlerts:
        await context.limiter.charge(principal.token_id)
        doc = _load_json(await read_body(request, context.settings.max_body_bytes))
        limit = context.settings.max_alerts_per_request
        if isinstance(doc, dict) and isinstance(doc.get("alerts"), list):
            check_count(len(doc["alerts"]), limit)  # before converting them all
        results = alertmanager.convert(
            doc,
            mapping=context.settings.formats.alertmanager,
            severities=context.severities,
            token_id=principal.token_id,
        )
        records = encode(results, limit)
        return await _produce(context, "alertmanager", records, _bearer(request))

    @router.post(
        "/v1/ingest/alerts",
        status_code=202,
        response_model=AcceptedAlerts,
        summary="Native alerts: one JSON object, a JSON array or NDJSON",
        openapi_extra=request_body(
            NativeAlerts, name="NativeAlerts", media_types=("application/x-ndjson",)
        ),
    )
    async def native_alerts(
        request: Request, principal: Publisher, context: Context
    ) -> AcceptedAlerts:
        await context.limiter.charge(principal.token_id)
        body = await read_body(request, context.settings.max_body_bytes)
        _load_utf8(body)
        docs = native.split_documents(body)
        if isinstance(docs, Problem):
            raise InvalidPayloadError("body is not JSON or NDJSON", [docs])
        limit = context.settings.max_alerts_per_request
        check_count(len(docs), limit)  # before converting them all
        results = native.convert(docs, severities=context.severities, token_id=principal.token_id)
        records = encode(results, limit)
        return await _produce(context, "alerts", records, _bearer(request))

    @router.post(
        "/v2/enqueue",
        status_code=202,
        response_model=PagerDutyAccepted,
        summary="PagerDuty Events API v2; routing_key is an alertyard token",
        openapi_extra=request_body(PagerDutyEvent),
        responses={
            status: {"model": PagerDutyError, "description": ERROR_DESCRIPTIONS[status]}
            for status in (400, 401, 403, 413, 429, 503)
        },
    )
    async def pagerduty_enqueue(request: Request, context: Context) -> JSONResponse:
        try:
            return await _enqueue(request, context)
        except AlertyardError as exc:
            metrics.REFUSED.labels("pagerduty", exc.code).inc()
            metrics.REQUESTS.labels("pagerduty", exc.http_status).inc()
            return pagerduty_error(exc, default_retry_s=context.settings.retry_after_s)

    return router


def _load_utf8(body: bytes) -> None:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayloadError(
            "body is not UTF-8", [Problem.of(None, INVALID_UTF8, f"byte {exc.start}")]
        ) from None


async def _enqueue(request: Request, context: Context) -> JSONResponse:
    doc = _load_json(await read_body(request, pagerduty.MAX_BODY_BYTES))
    key = pagerduty.routing_key(doc)
    if key is None:
        raise UnauthenticatedError("routing_key is missing: send an alertyard token in it")
    principal = await context.validator.authenticate(key)  # before anything is produced
    if not principal.has(Permission.alerts_publish):
        raise ForbiddenError(f"this token lacks the {Permission.alerts_publish.value} permission")
    await context.limiter.charge(principal.token_id)
    event = pagerduty.convert(
        doc,
        severities=context.severities,
        new_dedup_key=context.new_dedup_key,
        token_id=principal.token_id,
    )
    if event.alert is None:
        raise InvalidPayloadError(
            "Event object is invalid", [Problem.of(None, event.reason, e) for e in event.errors]
        )
    records = encode([event.alert], 1)
    await _produce(context, "pagerduty", records, key)
    body = PagerDutyAccepted(dedup_key=event.dedup_key)
    return JSONResponse(status_code=202, content=body.model_dump())


_PD_STATUS = {400: "invalid event", 401: "unauthorized", 403: "forbidden", 413: "payload too large"}


def pagerduty_error(exc: AlertyardError, *, default_retry_s: int) -> JSONResponse:
    """An error in PagerDuty's shape (``status``, ``message``, ``errors``) plus our ``code``."""
    errors = (
        [p.detail for p in exc.problems] if isinstance(exc, InvalidPayloadError) else [exc.detail]
    )
    body = {
        "status": _PD_STATUS.get(exc.http_status, exc.code.replace("_", " ")),
        "message": redact_tokens(exc.detail),
        "errors": errors,
        "code": exc.code,
    }
    return JSONResponse(
        status_code=exc.http_status,
        content=body,
        headers=retry_headers(exc, default_s=default_retry_s),
    )
