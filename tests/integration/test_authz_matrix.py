"""The authorization matrix: every endpoint of every service, principal by principal.

Each row of :data:`MATRIX` is one endpoint and who may call it; every principal of
:data:`PRINCIPALS` calls every row against the real apps on real Redis. An allowed call gets
the row's success status; an authenticated principal that is not allowed gets 403 (or the
row's stated refusal, e.g. 404 where ids must not leak); a revoked, expired, garbage or
missing token gets 401. After every refusal the test asserts nothing changed: every Redis key
(the outbox streams included), the audit log's files and the ingest topic's end offsets are as
before; an allowed ingest call must really have produced its alerts to Kafka.

The console is pages: each authenticated principal signs in by POSTing its token to
``/signin`` (a revoked or expired token holds a session opened before it died; garbage and
none hold no session), every form carries the session's CSRF secret, and an unauthenticated
principal is sent to the sign-in page (303) instead of a 401.

:func:`test_every_route_has_a_row` enumerates each app's routes, so an endpoint added without
a row fails CI. Adding a service is one entry in ``APPS`` plus its rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from redis.asyncio import Redis

from services.audit.app import build_app as build_audit_app
from services.audit.log import AuditLog
from services.audit.signing import load_or_create_signing_key
from services.console.app import create_app as create_console_app
from services.console.backend import Backend
from services.console.sessions import SESSION_KEY_PREFIX, SessionStore
from services.console.viewer import SESSION_COOKIE
from services.ingest.api import IngestContext
from services.ingest.app import create_app as create_ingest_app
from services.ingest.publisher import AlertPublisher
from services.ingest.ratelimit import TokenRateLimiter
from services.router.app import build_app as build_router_app
from services.router.decisions import Decision, DecisionStore, Placement
from services.router.metrics import RouterMetrics
from services.rules.control.store import RulesStore
from services.rules.engine.model import parse_ruleset
from services.tokens.app import create_app as create_tokens_app
from services.tokens.service import TokenService
from services.tokens.testing import issue_token, test_settings
from shared.alert import Alert
from shared.auth import Permission, Principal, TokenKind
from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.settings.console import ConsoleSettings
from shared.tokens import keys
from shared.tokens.permissions import Role
from shared.tokens.records import TokenRecord
from shared.tokens.validator import build_validator
from tests.integration.ingest._harness import ingest_settings
from tests.integration.ingest._payloads import am_alert, am_webhook
from tests.integration.router._harness import StaticRuleset

pytestmark = [pytest.mark.redis, pytest.mark.kafka]

AUTHENTICATED: Final = ("owner", "admin", "member", "viewer", "team", "publisher")
UNAUTHENTICATED: Final = ("revoked", "expired", "garbage", "none")
PRINCIPALS: Final = AUTHENTICATED + UNAUTHENTICATED
EVERYONE: Final = frozenset(PRINCIPALS)
ADMINS: Final = frozenset({"owner", "admin"})
READERS: Final = frozenset({"owner", "admin", "member", "viewer", "team"})
"""Everyone holding ``rules:read`` (all but the publish-only global token)."""
TEAM_WRITERS: Final = frozenset({"owner", "admin", "member", "team"})
TOKEN_READERS: Final = frozenset({"owner", "admin", "member"})
PUBLISHERS: Final = frozenset({"owner", "admin", "member", "team", "publisher"})
"""Everyone holding ``alerts:publish`` (all but the viewer)."""
SIGNED_IN: Final = frozenset(AUTHENTICATED)
"""Console pages that call no API open for every session with a live token."""
ALERT_READERS: Final = ADMINS | {"member", "team"}

VOLATILE_KEYS: Final = (b"alertyard:token:", b"alertyard:authfail")
"""Keys a refused call may touch without changing anything: ``last_used`` stamps, limiter."""
SIGNED_OUT_BECAUSE: Final = {
    "revoked": "token_revoked",
    "expired": "token_expired",
    "garbage": "expired",  # a session id the console never issued
    "none": "signed_out",
}
"""Where the console sends a principal without a live session: ``/signin?ended=<reason>``."""


@dataclass
class Call:
    """What one principal sends for one row (built fresh per call)."""

    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    form: dict[str, str] | None = None
    """A console form; the caller's session cookie and CSRF secret are added when sending."""


_PARTITIONS: Final = 3


@dataclass
class AlertsTopic:
    """The ingest service's topic (one per module) and a way to read its end offsets."""

    name: str
    bootstrap: str
    producer: AIOKafkaProducer
    offsets: AIOKafkaConsumer
    seeded: tuple[int, int]
    """(partition, offset) of one real alert, the source of the seeded routing decision."""

    async def produced(self) -> int:
        """Records in the topic so far (the sum of its end offsets)."""
        partitions = [TopicPartition(self.name, p) for p in range(_PARTITIONS)]
        ends = await self.offsets.end_offsets(partitions)
        return sum(ends.values())


@dataclass
class World:
    redis: Redis
    clients: dict[str, httpx.AsyncClient]
    bearer: dict[str, dict[str, str]]
    raw: dict[str, str]
    ids: dict[str, str]
    service: TokenService
    log_dir: Path
    alerts: AlertsTopic
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Console session id and its CSRF secret, per principal that holds one."""

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    async def snapshot(self) -> tuple[dict[bytes, bytes | None], dict[str, str], int]:
        values: dict[bytes, bytes | None] = {}
        async for key in self.redis.scan_iter(count=1000):
            if key.endswith(b":last_used") or key.startswith(VOLATILE_KEYS[1]):
                continue
            if key.startswith(SESSION_KEY_PREFIX.encode()):
                continue  # a refused page ends a dead token's session: that is the point
            values[key] = await self.redis.dump(key)
        files = {
            str(p.relative_to(self.log_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.log_dir.rglob("*"))
            if p.is_file()
        }
        return values, files, await self.alerts.produced()


Prepare = Callable[[World, str], Awaitable[Call]]


def static(path: str, json_body: Any = None) -> Prepare:
    async def prepare(_: World, __: str) -> Call:
        return Call(path, json=json_body)

    return prepare


@dataclass(frozen=True)
class Row:
    app: str
    method: str
    route: str
    """The route's path template, as the app declares it."""
    allowed: frozenset[str]
    ok: int = 200
    prepare: Prepare | None = None
    refused: dict[str, int] = field(default_factory=dict)
    """Refusal statuses other than 403 for authenticated principals (e.g. 404 hides ids)."""
    unauthenticated: int = 401
    """The console answers a missing or dead session with a redirect to the sign-in page."""

    def expected(self, who: str) -> int:
        if who in self.allowed:
            return self.ok
        if who in UNAUTHENTICATED:
            return self.unauthenticated
        return self.refused.get(who, 403)


# -- row builders that need fresh targets ------------------------------------------------------


async def _new_token(world: World, _: str) -> Call:
    created = await world.service.create_token(
        kind=TokenKind.global_,
        name=world.unique("target"),
        actor=None,
        permissions=[Permission.alerts_read],
    )
    return Call(created.token.id)


def token_action(action: str, body: Any = None) -> Prepare:
    async def prepare(world: World, who: str) -> Call:
        target = (await _new_token(world, who)).path
        return Call(f"/v1/tokens/{target}{action}", json=body)

    return prepare


def user_action(action: str, body: Any = None) -> Prepare:
    async def prepare(world: World, _: str) -> Call:
        user = await world.service.create_user(
            email=f"{world.unique('u')}@example.test", role=Role.member, actor=None
        )
        return Call(f"/v1/users/{user.id}{action}", json=body)

    return prepare


async def _create_token_body(world: World, who: str) -> Call:
    body: dict[str, Any]
    if who == "member":  # a member makes tokens for itself
        body = {"kind": "user", "name": world.unique("mine"), "user_id": world.ids["member_user"]}
    else:
        body = {"kind": "global", "name": world.unique("g"), "permissions": ["alerts:read"]}
    return Call("/v1/tokens", json=body)


async def _team_rule(world: World, _: str) -> Call:
    return Call("/v1/rules", json=_rule(world.unique("payments")))


def _rule(name: str, service: str = "checkout") -> dict[str, Any]:
    return {
        "name": name,
        "owner_team": "payments",
        "scope": "team",
        "destinations": ["payments"],
        "condition_groups": [
            {"conditions": [{"field": "service", "operator": "equals", "value": service}]}
        ],
    }


async def _apply_with_one_more(world: World, _: str) -> Call:
    stored = await RulesStore(world.redis).get_ruleset()
    rules = [*stored.dump()["rules"], _rule(world.unique("applied"))]
    body = json.dumps({"rules": rules}).encode()
    return Call("/v1/rules/apply", content=body, headers={"content-type": "application/json"})


async def _reorder_same(world: World, _: str) -> Call:
    stored = await RulesStore(world.redis).get_ruleset()
    return Call("/v1/rules/reorder", json={"rules": [r.id for r in stored.rules]})


async def _update_team_rule(world: World, _: str) -> Call:
    return Call("/v1/rules/payments-rule", json=_rule("payments-rule", world.unique("svc")))


async def _delete_team_rule(world: World, _: str) -> Call:
    name = world.unique("doomed")
    await RulesStore(world.redis).create_rule(
        parse_ruleset({"rules": [_rule(name)]}).rules[0], principal=None
    )
    return Call(f"/v1/rules/{name}")


# -- ingest: every publishing endpoint produces one alert -------------------------------------


async def _pagerduty_event(world: World, who: str) -> Call:
    event: dict[str, Any] = {
        "event_action": "trigger",
        "payload": {"summary": "disk full", "source": "db-1", "severity": "critical"},
    }
    if who != "none":  # PagerDuty's clients carry the token in the body, not in a header
        event["routing_key"] = world.raw[who]
    return Call("/v2/enqueue", json=event)


# -- console: pages and forms ------------------------------------------------------------------


def form(path: str, **fields: str) -> Prepare:
    async def prepare(_: World, __: str) -> Call:
        return Call(path, form=dict(fields))

    return prepare


async def _ruleset_version(world: World) -> str:
    return str((await RulesStore(world.redis).get_ruleset()).version)


async def _toggle_team_rule(world: World, _: str) -> Call:
    fields = {"enabled": "false", "version": await _ruleset_version(world)}
    return Call("/rules/payments-rule/enabled", form=fields)


async def _save_new_rule(world: World, _: str) -> Call:
    text = json.dumps(_rule(world.unique("paged")))  # YAML is a superset of JSON
    return Call("/rules/save", form={"text": text, "version": await _ruleset_version(world)})


async def _signin(world: World, who: str) -> Call:
    """The sign-in form's double-submit cookie and nonce, then the principal's token."""
    page = await world.clients["console"].get("/signin")
    nonce = page.cookies["alertyard_signin"]
    fields = {"token": world.raw.get(who, ""), "csrf": nonce}
    return Call("/signin", form=fields, headers={"cookie": f"alertyard_signin={nonce}"})


async def _console_token_form(world: World, who: str) -> Call:
    if who == "member":
        fields = {"kind": "user", "name": world.unique("mine"), "user_id": world.ids["member_user"]}
    else:
        fields = {"kind": "global", "name": world.unique("g"), "permissions": "alerts:read"}
    return Call("/settings/tokens", form=fields)


def console_token_action(action: str, method_form: bool) -> Prepare:
    async def prepare(world: World, who: str) -> Call:
        target = (await _new_token(world, who)).path
        return Call(f"/settings/tokens/{target}{action}", form={} if method_form else None)

    return prepare


def console_user_action(action: str, **fields: str) -> Prepare:
    async def prepare(world: World, _: str) -> Call:
        user = await world.service.create_user(
            email=f"{world.unique('u')}@example.test", role=Role.member, actor=None
        )
        return Call(f"/settings/users/{user.id}{action}", form=dict(fields))

    return prepare


def page(method: str, route: str, allowed: frozenset[str], ok: int = 200, **kwargs: Any) -> Row:
    """A console row: no live session means a redirect to the sign-in page."""
    return Row("console", method, route, allowed, ok, unauthenticated=303, **kwargs)


OPS: Final = [
    *(
        Row(app, "GET", path, EVERYONE)
        for app in ("tokens", "router", "audit", "ingest")
        for path in ("/healthz", "/readyz", "/metrics", "/asyncapi.yaml")
    ),
    *(Row("console", "GET", path, EVERYONE) for path in ("/healthz", "/readyz", "/metrics")),
]
"""Operational routes are public on purpose: liveness, readiness, Prometheus scrapes and the
AsyncAPI document of the topics (contracts, no data)."""

INGEST: Final = [
    Row(
        "ingest",
        "POST",
        "/v1/ingest/alertmanager",
        PUBLISHERS,
        202,
        static("/v1/ingest/alertmanager", am_webhook(am_alert())),
    ),
    Row(
        "ingest",
        "POST",
        "/v1/ingest/alerts",
        PUBLISHERS,
        202,
        static("/v1/ingest/alerts", {"source": "cron", "summary": "backup failed"}),
    ),
    Row("ingest", "POST", "/v2/enqueue", PUBLISHERS, 202, _pagerduty_event),
]

CONSOLE: Final = [
    page("GET", "/signin", EVERYONE),
    # Signing in is the one console call a dead token answers itself: the form again, 401.
    Row("console", "POST", "/signin", SIGNED_IN, 303, _signin),
    page("POST", "/signout", SIGNED_IN, 303, prepare=form("/signout")),
    # A producer-only token has no page to land on: a 403 page that says so.
    page("GET", "/", SIGNED_IN - {"publisher"}, 303),
    page("GET", "/alerts", ALERT_READERS),
    page("GET", "/alerts/search", SIGNED_IN, 303, prepare=static("/alerts/search?id=x")),
    page(
        "GET",
        "/alerts/{alert_id}",
        ALERT_READERS,
        prepare=static("/alerts/alert-payments"),
        refused={"viewer": 404},
    ),
    page(
        "GET",
        "/alerts/{alert_id}/explain",
        ALERT_READERS,
        prepare=static("/alerts/alert-payments/explain"),
        refused={"viewer": 404},
    ),
    page("GET", "/rules", READERS),
    page("POST", "/rules/{rule_id}/enabled", TEAM_WRITERS, 303, prepare=_toggle_team_rule),
    page("GET", "/rules/new", READERS),
    page("GET", "/rules/{rule_id}/edit", READERS, prepare=static("/rules/payments-rule/edit")),
    page("POST", "/rules/save", TEAM_WRITERS, 303, prepare=_save_new_rule),
    # The playground's form needs no API; explaining the pasted alert calls rules:read.
    page("GET", "/rules/explain", SIGNED_IN),
    page(
        "POST",
        "/rules/explain",
        READERS,
        prepare=form("/rules/explain", alert_json='{"service": "checkout"}'),
    ),
    page("GET", "/settings", SIGNED_IN, 303),
    page("GET", "/settings/tokens", TOKEN_READERS),
    page("POST", "/settings/tokens", ADMINS | {"member"}, 303, prepare=_console_token_form),
    page(
        "GET",
        "/settings/tokens/{token_id}",
        ADMINS,
        prepare=console_token_action("", method_form=False),
    ),
    page(
        "POST",
        "/settings/tokens/{token_id}/rotate",
        ADMINS,
        303,
        prepare=console_token_action("/rotate", method_form=True),
    ),
    page(
        "GET",
        "/settings/tokens/{token_id}/revoke",
        ADMINS,
        prepare=console_token_action("/revoke", method_form=False),
    ),
    page(
        "POST",
        "/settings/tokens/{token_id}/revoke",
        ADMINS,
        303,
        prepare=console_token_action("/revoke", method_form=True),
    ),
    page("GET", "/settings/users", ADMINS),
    page(
        "POST",
        "/settings/users",
        ADMINS,
        303,
        prepare=lambda w, _: _call(
            Call("/settings/users", form={"email": f"{w.unique('p')}@example.test"})
        ),
    ),
    page(
        "POST",
        "/settings/users/{user_id}/deactivate",
        ADMINS,
        303,
        prepare=console_user_action("/deactivate"),
    ),
    page(
        "POST",
        "/settings/users/{user_id}/role",
        ADMINS,
        303,
        prepare=console_user_action("/role", role="viewer"),
    ),
    page("GET", "/settings/teams", READERS),
    page(
        "POST",
        "/settings/teams",
        ADMINS,
        303,
        prepare=lambda w, _: _call(Call("/settings/teams", form={"name": w.unique("team")})),
    ),
    page("GET", "/audit", ADMINS),
]

MATRIX: Final[list[Row]] = [
    *OPS,
    # -- tokens service ----------------------------------------------------------------------
    Row("tokens", "POST", "/v1/tokens", ADMINS | {"member"}, 201, _create_token_body),
    Row("tokens", "GET", "/v1/tokens", TOKEN_READERS),
    Row(
        "tokens",
        "POST",
        "/v1/tokens/introspect",
        TOKEN_READERS,
        prepare=static("/v1/tokens/introspect", {"token": "ayg_not-a-token"}),
    ),
    Row(
        "tokens",
        "GET",
        "/v1/tokens/{token_id}",
        ADMINS,
        prepare=token_action(""),
    ),
    Row(
        "tokens",
        "POST",
        "/v1/tokens/{token_id}/rotate",
        ADMINS,
        prepare=token_action("/rotate", {}),
    ),
    Row(
        "tokens",
        "POST",
        "/v1/tokens/{token_id}/revoke",
        ADMINS,
        prepare=token_action("/revoke"),
    ),
    Row(
        "tokens",
        "POST",
        "/v1/teams",
        ADMINS,
        201,
        lambda w, _: _call(Call("/v1/teams", json={"name": w.unique("team")})),
    ),
    Row("tokens", "GET", "/v1/teams", READERS),
    Row(
        "tokens",
        "POST",
        "/v1/users",
        ADMINS,
        201,
        lambda w, _: _call(
            Call("/v1/users", json={"email": f"{w.unique('n')}@example.test", "role": "viewer"})
        ),
    ),
    Row("tokens", "GET", "/v1/users", ADMINS),
    Row("tokens", "GET", "/v1/users/{user_id}", ADMINS, prepare=user_action("")),
    Row(
        "tokens",
        "POST",
        "/v1/users/{user_id}/deactivate",
        ADMINS,
        prepare=user_action("/deactivate"),
    ),
    Row(
        "tokens",
        "PUT",
        "/v1/users/{user_id}/role",
        ADMINS,
        prepare=user_action("/role", {"role": "viewer"}),
    ),
    # -- router: alerts ------------------------------------------------------------------------
    Row(
        "router",
        "GET",
        "/v1/alerts/{alert_id}",
        ADMINS | {"member", "team"},
        prepare=static("/v1/alerts/alert-payments"),
        refused={"viewer": 404},  # no team of its own: the id does not exist for it
    ),
    Row("router", "GET", "/v1/alerts", ADMINS | {"member", "team"}),
    # -- router: rules -------------------------------------------------------------------------
    Row("router", "GET", "/v1/rules", READERS),
    Row("router", "POST", "/v1/rules", TEAM_WRITERS, 201, _team_rule),
    Row("router", "POST", "/v1/rules/apply", TEAM_WRITERS, prepare=_apply_with_one_more),
    Row("router", "POST", "/v1/rules/reorder", TEAM_WRITERS, prepare=_reorder_same),
    Row(
        "router",
        "POST",
        "/v1/rules/explain",
        READERS,
        prepare=static("/v1/rules/explain", {"alert": {"service": "checkout"}}),
    ),
    Row(
        "router",
        "POST",
        "/v1/rules/test",
        READERS,
        prepare=static(
            "/v1/rules/test", {"cases": [{"alert": {"service": "x"}, "expect_teams": []}]}
        ),
    ),
    Row("router", "POST", "/v1/rules/lint", READERS, prepare=static("/v1/rules/lint", {})),
    Row("router", "GET", "/v1/rules/sources", READERS),
    Row(
        "router",
        "PUT",
        "/v1/rules/sources/{token_id}",
        ADMINS,
        prepare=lambda w, _: _call(
            Call(f"/v1/rules/sources/{w.ids['publisher']}", json={"teams": ["payments"]})
        ),
    ),
    Row(
        "router",
        "DELETE",
        "/v1/rules/sources/{token_id}",
        ADMINS,
        prepare=lambda w, _: _call(Call(f"/v1/rules/sources/{w.ids['publisher']}")),
    ),
    Row("router", "GET", "/v1/rules/{ref}", READERS, prepare=static("/v1/rules/payments-rule")),
    Row("router", "PUT", "/v1/rules/{ref}", TEAM_WRITERS, prepare=_update_team_rule),
    Row("router", "DELETE", "/v1/rules/{ref}", TEAM_WRITERS, prepare=_delete_team_rule),
    # -- audit ---------------------------------------------------------------------------------
    Row("audit", "GET", "/v1/audit/events", ADMINS),
    Row("audit", "GET", "/v1/audit/verify", ADMINS),
    Row("audit", "GET", "/v1/audit/gaps", ADMINS),
    *INGEST,
    *CONSOLE,
]


async def _call(call: Call) -> Call:
    return call


SEED_RULES: Final = {
    "rules": [
        {
            "name": "org-databases",
            "owner_team": "platform",
            "destinations": ["platform"],
            "condition_groups": [
                {"conditions": [{"field": "service", "operator": "equals", "value": "db"}]}
            ],
        },
        _rule("payments-rule"),
    ]
}


async def _expire(redis: Redis, principal: Principal) -> None:
    raw = await redis.get(keys.token_key(principal.token_id))
    assert raw is not None
    record = TokenRecord.model_validate_json(raw)
    past = datetime.now(UTC) - timedelta(minutes=1)
    await redis.set(
        keys.token_key(principal.token_id),
        record.model_copy(update={"expires_at": past}).model_dump_json(),
    )


class _ByHost(httpx.AsyncBaseTransport):
    """The console's API calls go to the in-process apps, picked by host name."""

    def __init__(self, apps: dict[str, FastAPI]) -> None:
        self._transports = {name: httpx.ASGITransport(app=app) for name, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transports[request.url.host].handle_async_request(request)


@pytest.fixture(scope="module")
async def alerts_topic(kafka_bootstrap: str) -> AsyncIterator[AlertsTopic]:
    """One real topic for the module: ingest produces to it, the console explains from it."""
    name = f"authz-{uuid.uuid4().hex[:10]}.alerts"
    await ensure_topics(kafka_bootstrap, [name], partitions=_PARTITIONS)
    producer = make_producer(kafka_bootstrap)
    offsets = make_consumer(kafka_bootstrap, group_id=None)
    await producer.start()
    await offsets.start()
    try:
        alert = Alert(id="alert-payments", source="matrix", summary="seeded", service="checkout")
        sent = await producer.send_and_wait(name, value=alert.to_bytes(), key=alert.kafka_key())
        yield AlertsTopic(name, kafka_bootstrap, producer, offsets, (sent.partition, sent.offset))
    finally:
        await offsets.stop()
        await producer.stop()


async def _build_world(
    redis: Redis,
    redis_url: str,
    tmp_path: Path,
    alerts: AlertsTopic,
    stack: contextlib.AsyncExitStack,
) -> World:
    settings = test_settings(redis_url).model_copy(update={"auth_fail_limit": 1_000_000})
    service = TokenService(redis, settings)
    for team in ("payments", "platform"):
        await service.create_team(name=team, actor=None)
    raw: dict[str, str] = {}
    principals: dict[str, Principal] = {}
    for who, kwargs in {
        "owner": {"kind": "user", "role": "owner"},
        "admin": {"kind": "user", "role": "admin"},
        "member": {"kind": "user", "role": "member", "teams": ["payments"]},
        "viewer": {"kind": "user", "role": "viewer"},
        "team": {"kind": "team", "team": "payments"},
        "publisher": {"kind": "global", "permissions": [Permission.alerts_publish]},
        "revoked": {"kind": "global"},
        "expired": {"kind": "global"},
    }.items():
        raw[who], principals[who] = await issue_token(redis, settings, **kwargs)  # type: ignore[arg-type]
    await service.revoke_token(token_id=principals["revoked"].token_id, actor=None)
    await _expire(redis, principals["expired"])
    raw["garbage"] = "ayg_" + "x" * 52
    await RulesStore(redis).apply(parse_ruleset(SEED_RULES), principal=None)
    decisions = DecisionStore(redis, retention_s=3600)
    now = datetime.now(UTC)
    partition, offset = alerts.seeded
    await decisions.write_many(
        [
            Decision(
                alert_id="alert-payments",
                outcome="routed",
                alert_status="firing",
                severity="error",
                dedup_key="dk",
                teams=("payments",),
                rule_ids=("r1",),
                ruleset_version=1,
                fallback=False,
                token_id=principals["publisher"].token_id,
                received_at=now,
                routed_at=now,
                source_topic=alerts.name,
                source_partition=partition,
                source_offset=offset,
                published=(Placement(topic="alerts.team.payments", partition=0, offset=1),),
            ).to_record()
        ]
    )
    validator = build_validator(settings, redis)
    await validator.start()  # the token service is ready once its invalidation listener runs
    stack.push_async_callback(validator.stop)
    log_dir = tmp_path / "audit"
    audit_log = AuditLog.open(
        log_dir,
        signing_key=load_or_create_signing_key(log_dir, None),
        checkpoint_every_records=50,
    )
    stack.callback(audit_log.close)
    apps: dict[str, FastAPI] = {
        "tokens": create_tokens_app(service=service, validator=validator, settings=settings),
        "router": build_router_app(
            validator=validator,
            rules_store=RulesStore(redis),
            ruleset=StaticRuleset(parse_ruleset(SEED_RULES)),
            decision_store=decisions,
            metrics=RouterMetrics(),
            partitions_assigned=lambda: True,
        ),
        "audit": build_audit_app(
            validator=validator,
            log_dir=log_dir,
            public_key=audit_log.public_key,
            gaps=audit_log.gaps,
        ),
    }
    ingest = ingest_settings(alerts.bootstrap, redis_url)
    ingest = ingest.model_copy(
        update={"topics": ingest.topics.model_copy(update={"alerts": alerts.name})}
    )
    context = IngestContext(
        ingest,
        validator=validator,
        publisher=AlertPublisher(alerts.producer, alerts.name, timeout_s=ingest.produce_timeout_s),
        limiter=TokenRateLimiter(""),
    )
    apps["ingest"] = create_ingest_app(ingest, context=context)
    await stack.enter_async_context(apps["ingest"].router.lifespan_context(apps["ingest"]))
    console_settings = ConsoleSettings(
        redis_url=redis_url,
        kafka_bootstrap_servers=ingest.kafka_bootstrap_servers,
        tokens_url="http://tokens",
        router_url="http://router",
        audit_url="http://audit",
        auth_fail_limit=1_000_000,
    )
    backend = Backend(console_settings, transport=_ByHost(dict(apps)))
    stack.push_async_callback(backend.aclose)
    # Not the console's lifespan: the validator is shared with the other apps and started above.
    apps["console"] = create_console_app(
        settings=console_settings, redis=redis, validator=validator, backend=backend
    )
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
        for name, app in apps.items()
    }
    for client in clients.values():
        stack.push_async_callback(client.aclose)
    bearer = {who: {"authorization": f"Bearer {token}"} for who, token in raw.items()}
    bearer["none"] = {}
    ids = {who: p.token_id for who, p in principals.items()}
    ids["member_user"] = principals["member"].user_id or ""
    world = World(redis, clients, bearer, raw, ids, service, log_dir, alerts)
    await _open_sessions(world, principals, apps["console"].state.sessions)
    return world


async def _open_sessions(
    world: World, principals: dict[str, Principal], sessions: SessionStore
) -> None:
    """Live tokens sign in through the form; dead ones keep a session opened before they died
    (signing in with them is refused, which the ``POST /signin`` row asserts); garbage sends a
    session id the console never issued, none sends no cookie."""
    console = world.clients["console"]
    for who in AUTHENTICATED:
        call = await _signin(world, who)
        response = await console.post(call.path, data=call.form, headers=call.headers)
        assert response.status_code == 303, (who, response.text[:200])
        session_id = response.cookies[SESSION_COOKIE]
        session = await sessions.load(session_id)
        assert session is not None
        world.sessions[who] = (session_id, session.csrf)
    for who in ("revoked", "expired"):
        session = await sessions.open(token=world.raw[who], token_id=principals[who].token_id)
        world.sessions[who] = (session.id, session.csrf)
    world.sessions["garbage"] = ("x" * 43, "x" * 43)


APPS: Final = ("tokens", "router", "audit", "ingest", "console")


@pytest.fixture
async def world(
    redis: Redis, redis_url: str, tmp_path: Path, alerts_topic: AlertsTopic
) -> AsyncIterator[World]:
    async with contextlib.AsyncExitStack() as stack:
        yield await _build_world(redis, redis_url, tmp_path, alerts_topic, stack)


def _request(world: World, row: Row, who: str, call: Call) -> dict[str, Any]:
    """The request of ``who``: its bearer token for the APIs, its session for the console."""
    headers = dict(world.bearer[who]) if row.app != "console" else {}
    data = None
    if row.app == "console":
        session_id, csrf = world.sessions.get(who, ("", ""))
        if session_id:
            headers["cookie"] = f"{SESSION_COOKIE}={session_id}"
        if call.form is not None:
            data = {"csrf": csrf, **call.form}
    headers.update(call.headers)
    return {"json": call.json, "content": call.content, "data": data, "headers": headers}


def _refusal_problem(row: Row, who: str, response: httpx.Response) -> str | None:
    """What is wrong with a refusal's answer, or None when it says what the app promises."""
    if row.app != "console":
        return None if response.json().get("code") else "no error code in the body"
    if response.status_code == 303:
        location = response.headers.get("location", "")
        wanted = f"/signin?ended={SIGNED_OUT_BECAUSE[who]}"
        return None if location == wanted else f"redirected to {location!r}, not {wanted!r}"
    if not response.headers["content-type"].startswith("text/html"):
        return "not an HTML page"
    return None


@pytest.mark.parametrize("row", MATRIX, ids=lambda r: f"{r.app}:{r.method}:{r.route}")
async def test_matrix(world: World, row: Row) -> None:
    failures = []
    for who in PRINCIPALS:
        call = await (row.prepare or static(row.route))(world, who)
        expected = row.expected(who)
        refused = who not in row.allowed
        before = await world.snapshot() if refused or row.app == "ingest" else None
        response = await world.clients[row.app].request(
            row.method, call.path, **_request(world, row, who, call)
        )
        if response.status_code != expected:
            failures.append(f"{who}: {response.status_code} != {expected}: {response.text[:200]}")
            continue
        if who in world.raw and who != "none":
            assert world.raw[who] not in response.text, f"{who}'s token is in the answer"
        if not refused and expected == 303 and row.route != "/signout":
            location = response.headers["location"]  # a page's success, not a lost session
            assert not location.startswith("/signin"), (who, location)
        if before is None:
            continue
        after = await world.snapshot()
        if refused:
            problem = _refusal_problem(row, who, response)
            assert problem is None, (who, problem, response.text[:200])
            assert after == before, f"{who} was refused but something changed"
        elif expected == 202:  # accepted means Kafka holds it: one alert per request here
            assert after[2] - before[2] == 1, f"{who}: 202 but {after[2] - before[2]} produced"
    assert not failures, "\n".join(failures)


def _routes(name: str, app: FastAPI) -> set[tuple[str, str, str]]:
    if name == "console":
        # Pages are not in an OpenAPI document (the console serves none, and "/" and
        # "/settings" are hidden redirects): walk the routes, included routers too. The
        # /static mount (public assets) is not a route with methods and needs no row.
        return {
            (name, method, context.path)
            for context in iter_route_contexts(app.routes)
            if context.path is not None
            for method in context.methods or ()
        }
    # The OpenAPI document lists every route, included routers too (FastAPI mounts those
    # lazily, so app.routes does not show them); every API route is in the schema.
    return {
        (name, method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }


async def test_every_route_has_a_row(world: World) -> None:
    """Fails when an endpoint is added without deciding who may call it."""
    rows = {(r.app, r.method, r.route) for r in MATRIX}
    routes = set()
    for name in APPS:
        transport = world.clients[name]._transport
        routes |= _routes(name, transport.app)  # type: ignore[attr-defined]
    assert routes - rows == set(), "endpoints without a row in the authorization matrix"
    assert rows - routes == set(), "rows for endpoints that do not exist"
    assert {r.app for r in MATRIX} == set(APPS)


FORMS: Final = [r for r in MATRIX if r.app == "console" and r.method == "POST"]


@pytest.mark.parametrize("row", FORMS, ids=lambda r: f"{r.method}:{r.route}")
async def test_a_console_form_without_its_csrf_secret_changes_nothing(
    world: World, row: Row
) -> None:
    """The owner may submit every form, but not one forged from elsewhere (no CSRF secret)."""
    call = await (row.prepare or static(row.route))(world, "owner")
    request = _request(world, row, "owner", call)
    request["data"] = {**request["data"], "csrf": "forged"}
    before = await world.snapshot()
    response = await world.clients["console"].request(row.method, call.path, **request)
    assert response.status_code == 403, response.text[:200]
    assert "csrf_failed" in response.text
    assert await world.snapshot() == before
