"""The authorization matrix: every endpoint of every service, principal by principal.

Each row of :data:`MATRIX` is one endpoint and who may call it; every principal of
:data:`PRINCIPALS` calls every row against the real apps on real Redis. An allowed call gets
the row's success status; an authenticated principal that is not allowed gets 403 (or the
row's stated refusal, e.g. 404 where ids must not leak); a revoked, expired, garbage or
missing token gets 401. After every refusal the test asserts nothing changed: every Redis key
(the outbox streams included) and the audit log's files are as before.

:func:`test_every_route_has_a_row` enumerates each app's routes, so an endpoint added without
a row fails CI. Adding a service (ingest, console) is one entry in ``APPS`` plus its rows.
"""

from __future__ import annotations

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
from fastapi import FastAPI
from redis.asyncio import Redis

from services.audit.app import build_app as build_audit_app
from services.audit.log import AuditLog
from services.audit.signing import load_or_create_signing_key
from services.router.app import build_app as build_router_app
from services.router.decisions import Decision, DecisionStore, Placement
from services.router.metrics import RouterMetrics
from services.rules.control.store import RulesStore
from services.rules.engine.model import parse_ruleset
from services.tokens.app import create_app as create_tokens_app
from services.tokens.service import TokenService
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission, Principal, TokenKind
from shared.tokens import keys
from shared.tokens.permissions import Role
from shared.tokens.records import TokenRecord
from shared.tokens.validator import build_validator
from tests.integration.router._harness import StaticRuleset

pytestmark = pytest.mark.redis

AUTHENTICATED: Final = ("owner", "admin", "member", "viewer", "team", "publisher")
UNAUTHENTICATED: Final = ("revoked", "expired", "garbage", "none")
PRINCIPALS: Final = AUTHENTICATED + UNAUTHENTICATED
EVERYONE: Final = frozenset(PRINCIPALS)
ADMINS: Final = frozenset({"owner", "admin"})
READERS: Final = frozenset({"owner", "admin", "member", "viewer", "team"})
"""Everyone holding ``rules:read`` (all but the publish-only global token)."""
TEAM_WRITERS: Final = frozenset({"owner", "admin", "member", "team"})
TOKEN_READERS: Final = frozenset({"owner", "admin", "member"})

VOLATILE_KEYS: Final = (b"alertyard:token:", b"alertyard:authfail")
"""Keys a refused call may touch without changing anything: ``last_used`` stamps, limiter."""


@dataclass
class Call:
    """What one principal sends for one row (built fresh per call)."""

    path: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    redis: Redis
    clients: dict[str, httpx.AsyncClient]
    bearer: dict[str, dict[str, str]]
    ids: dict[str, str]
    service: TokenService
    log_dir: Path

    def unique(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:8]}"

    async def snapshot(self) -> tuple[dict[bytes, bytes | None], dict[str, str]]:
        values: dict[bytes, bytes | None] = {}
        async for key in self.redis.scan_iter(count=1000):
            if key.endswith(b":last_used") or key.startswith(VOLATILE_KEYS[1]):
                continue
            values[key] = await self.redis.dump(key)
        files = {
            str(p.relative_to(self.log_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.log_dir.rglob("*"))
            if p.is_file()
        }
        return values, files


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

    def expected(self, who: str) -> int:
        if who in self.allowed:
            return self.ok
        if who in UNAUTHENTICATED:
            return 401
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


OPS: Final = [
    Row(app, "GET", path, EVERYONE, ok=ok)
    for app in ("tokens", "router", "audit")
    for path, ok in (
        ("/healthz", 200),
        ("/readyz", 200),
        ("/metrics", 200),
        ("/asyncapi.yaml", 200),
    )
]
"""Operational routes are public on purpose: liveness, readiness, Prometheus scrapes and the
AsyncAPI document of the topics (contracts, no data)."""

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


async def _build_world(redis: Redis, redis_url: str, tmp_path: Path) -> tuple[World, list[Any]]:
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
                source_topic="alerts",
                source_partition=0,
                source_offset=1,
                published=(Placement(topic="alerts.team.payments", partition=0, offset=1),),
            ).to_record()
        ]
    )
    validator = build_validator(settings, redis)
    await validator.start()  # the token service is ready once its invalidation listener runs
    log_dir = tmp_path / "audit"
    audit_log = AuditLog.open(
        log_dir,
        signing_key=load_or_create_signing_key(log_dir, None),
        checkpoint_every_records=50,
    )
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
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}")
        for name, app in apps.items()
    }
    bearer = {who: {"authorization": f"Bearer {token}"} for who, token in raw.items()}
    bearer["none"] = {}
    ids = {who: p.token_id for who, p in principals.items()}
    ids["member_user"] = principals["member"].user_id or ""
    world = World(redis, clients, bearer, ids, service, log_dir)
    return world, [validator, audit_log]


APPS: Final = ("tokens", "router", "audit")


@pytest.fixture
async def world(redis: Redis, redis_url: str, tmp_path: Path) -> AsyncIterator[World]:
    built, closeables = await _build_world(redis, redis_url, tmp_path)
    yield built
    for client in built.clients.values():
        await client.aclose()
    await closeables[0].stop()
    closeables[1].close()


@pytest.mark.parametrize("row", MATRIX, ids=lambda r: f"{r.app}:{r.method}:{r.route}")
async def test_matrix(world: World, row: Row) -> None:
    failures = []
    for who in PRINCIPALS:
        call = await (row.prepare or static(row.route))(world, who)
        expected = row.expected(who)
        before = await world.snapshot() if expected >= 400 else None
        response = await world.clients[row.app].request(
            row.method,
            call.path,
            json=call.json,
            content=call.content,
            headers={**world.bearer[who], **call.headers},
        )
        if response.status_code != expected:
            failures.append(f"{who}: {response.status_code} != {expected}: {response.text[:200]}")
            continue
        if before is not None:
            assert response.json()["code"], (who, response.text)
            after = await world.snapshot()
            assert after == before, f"{who} was refused but something changed"
    assert not failures, "\n".join(failures)


async def test_every_route_has_a_row(world: World) -> None:
    """Fails when an endpoint is added without deciding who may call it."""
    rows = {(r.app, r.method, r.route) for r in MATRIX}
    routes = set()
    for name in APPS:
        transport = world.clients[name]._transport
        app: FastAPI = transport.app  # type: ignore[attr-defined]
        # The OpenAPI document lists every route, included routers too (FastAPI mounts those
        # lazily, so app.routes does not show them); every route here is in the schema.
        for path, operations in app.openapi()["paths"].items():
            routes |= {(name, method.upper(), path) for method in operations}
    assert routes - rows == set(), "endpoints without a row in the authorization matrix"
    assert rows - routes == set(), "rows for endpoints that do not exist"
    assert {r.app for r in MATRIX} == set(APPS)
