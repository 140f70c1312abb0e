"""Every route of the token service and the router has a documented response body."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from services.router.app import build_app
from services.router.decisions import DecisionStore
from services.router.metrics import RouterMetrics
from services.rules.control.store import RulesStore
from services.tokens.app import create_app
from services.tokens.service import TokenService
from services.tokens.testing import test_settings
from shared.redis import make_redis
from shared.tokens.validator import build_validator

_UNUSED_REDIS = "redis://127.0.0.1:1/0"  # building an app does no I/O
_PLAIN_TEXT = {("/metrics", "get"), ("/asyncapi.yaml", "get")}  # text, by design


class _NoRuleset:
    loaded = True


def _tokens_app() -> FastAPI:
    settings = test_settings(_UNUSED_REDIS)
    redis = make_redis(_UNUSED_REDIS)
    return create_app(
        service=TokenService(redis, settings),
        validator=build_validator(settings, redis),
        settings=settings,
    )


def _router_app() -> FastAPI:
    redis = make_redis(_UNUSED_REDIS)
    return build_app(
        validator=build_validator(test_settings(_UNUSED_REDIS), redis),
        rules_store=RulesStore(redis),
        ruleset=_NoRuleset(),  # type: ignore[arg-type]  # only .loaded is read
        decision_store=DecisionStore(redis, retention_s=60),
        metrics=RouterMetrics(CollectorRegistry()),
        partitions_assigned=lambda: True,
    )


@pytest.mark.parametrize("build", [_tokens_app, _router_app], ids=["tokens", "router"])
def test_every_route_documents_its_response(build: Any) -> None:
    spec = build().openapi()
    untyped = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if (path, method) in _PLAIN_TEXT:
                continue
            ok = next(r for code, r in operation["responses"].items() if code.startswith("2"))
            schema = ok.get("content", {}).get("application/json", {}).get("schema", {})
            if not schema or schema == {} or schema.get("additionalProperties") is True:
                untyped.append(f"{method.upper()} {path}")
            elif "$ref" not in schema and schema.get("type") == "object":
                untyped.append(f"{method.upper()} {path}")  # a bare dict, not a model
    assert not untyped, untyped
