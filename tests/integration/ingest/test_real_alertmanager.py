"""A real Prometheus Alertmanager -> ingest -> router -> team topics, firing then resolved.

Alerts are posted to Alertmanager's API as Prometheus does; its webhook receiver (bearer
credentials from a file, ``send_resolved``) calls the ingest service; the router routes what
ingest produced. Severities arrive normalised (``high`` -> error, ``page`` -> critical).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from services.cli.main import app
from services.router.api import build_alerts_api
from services.router.decisions import DecisionStore, DecisionWriter
from services.router.engine import AlertRouter
from services.rules.engine.model import Ruleset
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.http import install_error_handlers
from shared.redis import make_redis
from shared.settings import IngestSettings
from shared.tokens.validator import build_validator
from tests.integration.ingest._alertmanager import alertmanager, post_alerts, webhook_config
from tests.integration.ingest._harness import running_ingest, serve_app
from tests.integration.router._harness import (
    Collector,
    StaticRuleset,
    decision_indexer,
    router_settings,
)

# The first run on a fresh machine builds Alertmanager (go build, a few minutes) in the fixture.
pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(900)]

RULES = Ruleset.model_validate(
    {
        "version": 1,
        "rules": [
            {
                "name": f"{service}-to-{team}",
                "owner_team": team,
                "condition_groups": [
                    {"conditions": [{"field": "service", "operator": "equals", "value": service}]}
                ],
                "destinations": [team],
            }
            for service, team in (("checkout", "payments"), ("search", "search"))
        ],
    }
)


def _am_alert(name: str, service: str, severity: str, **fields: Any) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "service": service, "severity": severity, "env": "prod"},
        "annotations": {"summary": f"{name} on {service}"},
        "generatorURL": "http://prometheus.example:9090/graph",
        **fields,
    }


def _bodies(collector: Collector, topic: str) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in collector.records.get(topic, [])]


@dataclass
class Pipeline:
    alertmanager_url: str
    collector: Collector
    settings: IngestSettings
    ingest_url: str
    router_url: str
    """The router's alert lookup API (``/v1/alerts``)."""
    token: str
    """alerts:publish and alerts:read."""


@pytest.fixture
async def pipeline(kafka_bootstrap: str, redis_url: str, tmp_path: Path) -> AsyncIterator[Pipeline]:
    """Router (and its alert lookup API) + ingest on unique topics + an Alertmanager pointed at
    ingest."""
    redis = make_redis(redis_url)
    await redis.flushdb()
    tokens = test_settings(redis_url)
    token, _ = await issue_token(
        redis,
        tokens,
        kind="global",
        permissions=[Permission.alerts_publish, Permission.alerts_read],
    )
    token_file = tmp_path / "alertyard.token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    rsettings = router_settings(kafka_bootstrap, redis_url)
    isettings = IngestSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        redis_url=redis_url,
        topics=rsettings.topics,
        rate_limit="",
    )
    validator = build_validator(tokens, redis)
    await validator.start()
    store = DecisionStore(redis, retention_s=3600)
    router = AlertRouter(
        rsettings,
        validator=validator,
        ruleset=StaticRuleset(RULES),
        decisions=DecisionWriter(store, max_buffered=1000),
    )
    topics = rsettings.topics
    collector = Collector(
        kafka_bootstrap,
        [
            topics.team_topic("payments"),
            topics.team_topic("search"),
            topics.unrouted,
            topics.rejected,
        ],
    )
    await collector.start()
    await router.start()
    routing = asyncio.create_task(router.run())
    lookups = FastAPI()
    lookups.state.validator, lookups.state.decision_store = validator, store
    install_error_handlers(lookups)
    lookups.include_router(build_alerts_api())
    try:
        async with (
            decision_indexer(rsettings, store),
            running_ingest(isettings, redis) as ingest_url,
            serve_app(lookups) as api,
        ):
            config = webhook_config(f"{ingest_url}/v1/ingest/alertmanager", token_file)
            async with alertmanager(tmp_path / "am", config) as am_url:
                yield Pipeline(am_url, collector, isettings, ingest_url, api, token)
    finally:
        await router.stop()
        await asyncio.gather(routing, return_exceptions=True)
        await collector.stop()
        await validator.stop()
        await redis.flushdb()
        await redis.aclose()


async def test_alerts_are_routed_to_team_topics_firing_then_resolved(pipeline: Pipeline) -> None:
    am_url, collector, settings = pipeline.alertmanager_url, pipeline.collector, pipeline.settings
    payments = settings.topics.team_topic("payments")
    search = settings.topics.team_topic("search")
    started = datetime.now(UTC) - timedelta(minutes=1)
    firing = [
        _am_alert("CheckoutLatency", "checkout", "high", startsAt=started.isoformat()),
        _am_alert("SearchDown", "search", "page", startsAt=started.isoformat()),
    ]
    await post_alerts(am_url, firing)

    def statuses(topic: str) -> list[str]:
        return [b["status"] for b in _bodies(collector, topic)]

    await collector.wait_for(
        lambda: statuses(payments) == ["firing"] and statuses(search) == ["firing"]
    )
    (checkout,) = _bodies(collector, payments)
    assert checkout["severity"] == "error"
    assert checkout["labels"]["severity_original"] == "high"
    assert checkout["source"] == "alertmanager"
    assert checkout["environment"] == "prod"
    assert checkout["summary"] == "CheckoutLatency on checkout"
    assert checkout["payload"]["receiver"] == "alertyard"
    assert checkout["payload"]["generatorURL"] == "http://prometheus.example:9090/graph"
    (search_down,) = _bodies(collector, search)
    assert search_down["severity"] == "critical"

    ended = datetime.now(UTC) - timedelta(seconds=1)
    await post_alerts(am_url, [{**a, "endsAt": ended.isoformat()} for a in firing])
    await collector.wait_for(
        lambda: (
            statuses(payments) == ["firing", "resolved"]
            and statuses(search) == ["firing", "resolved"]
        ),
        within=30,
    )
    resolved = _bodies(collector, payments)[1]
    assert resolved["dedup_key"] == checkout["dedup_key"]  # the fingerprint: one key, in order
    assert resolved["ends_at"] is not None
    assert resolved["severity"] == "error"
    assert not collector.records.get(settings.topics.rejected)


async def test_ingest_sample_shows_where_the_router_sent_it(pipeline: Pipeline) -> None:
    env = {
        "ALERTYARD_INGEST_URL": pipeline.ingest_url,
        "ALERTYARD_ROUTER_URL": pipeline.router_url,
        "ALERTYARD_TOKEN": pipeline.token,
    }

    def invoke() -> tuple[int, str]:
        args = ["ingest", "sample", "--format", "alertmanager", "--severity", "high"]
        result = CliRunner().invoke(app, [*args, "--wait", "60"], env=env)
        return result.exit_code, result.output

    code, out = await asyncio.to_thread(invoke)
    assert code == 0, out
    assert "ingest accepted 1 alert(s)" in out
    assert "-> routed: payments" in out
    assert "severity=error" in out
    assert pipeline.token not in out
