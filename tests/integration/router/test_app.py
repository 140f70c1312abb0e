"""The router's HTTP app: readiness follows partitions + ruleset, metrics, mounted APIs."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from services.router.app import build_app
from services.router.decisions import DecisionStore
from services.router.metrics import RouterMetrics
from services.rules.control.store import RulesStore
from services.rules.engine.model import Ruleset
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.tokens.validator import build_validator
from tests.integration.router._harness import StaticRuleset

pytestmark = pytest.mark.redis


async def test_readiness_metrics_and_routes(redis: Redis, redis_url: str) -> None:
    settings = test_settings(redis_url)
    validator = build_validator(settings, redis)
    assigned = {"value": False}
    metrics = RouterMetrics()
    metrics.alerts_in.inc(3)
    app = build_app(
        validator=validator,
        rules_store=RulesStore(redis),
        ruleset=StaticRuleset(Ruleset()),
        decision_store=DecisionStore(redis, retention_s=60),
        metrics=metrics,
        partitions_assigned=lambda: assigned["value"],
    )
    reader, _ = await issue_token(
        redis, settings, kind="global", permissions=[Permission.rules_read, Permission.alerts_read]
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as http:
        not_ready = await http.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"] == {"partitions_assigned": False, "ruleset_loaded": True}
        assigned["value"] = True
        assert (await http.get("/readyz")).status_code == 200
        text = (await http.get("/metrics")).text
        assert "alertyard_router_alerts_in_total 3.0" in text
        assert reader not in text
        headers = {"authorization": f"Bearer {reader}"}
        assert (await http.get("/v1/rules")).status_code == 401
        assert (await http.get("/v1/rules", headers=headers)).status_code == 200
        missing = await http.get("/v1/alerts/nope", headers=headers)
        assert missing.status_code == 404
        assert missing.json()["code"] == "not_found"
    await validator.stop()
