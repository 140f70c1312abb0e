"""Routing matrix on real Kafka and Redis: fan-out, single team, fallback, unrouted, team stamp."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from services.router.decisions import Decision
from services.tokens.testing import issue_token
from shared.alert import Alert
from shared.headers import RoutedHeaders
from tests.integration.router._harness import alert_body
from tests.integration.router.conftest import RouterEnv

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

MATRIX: list[tuple[dict[str, Any], list[str], bool]] = [
    # (alert fields, expected teams, fallback)
    ({"service": "db"}, ["dba", "sre"], False),
    ({"service": "cache"}, ["dba"], False),
    ({"service": "web", "environment": "prod"}, ["frontend"], False),
    ({"service": "web", "environment": "dev", "labels": {"team": "payments"}}, ["payments"], False),
    ({"service": "web", "environment": "dev", "severity": "critical"}, ["oncall"], True),
    ({"service": "web", "environment": "dev", "severity": "info"}, [], False),
]


async def test_routing_matrix(router_env: RouterEnv) -> None:
    env, topics = router_env, router_env.settings.topics
    sent: list[tuple[str, dict[str, Any], list[str], bool]] = []
    for fields, teams, fallback in MATRIX:
        alert_id = uuid.uuid4().hex
        body = alert_body(id=alert_id, dedup_key=f"dk-{alert_id}", **fields)
        await env.sender.send(body, token=env.publisher_token, key=b"producer-key")
        sent.append((alert_id, fields, teams, fallback))

    def arrived() -> bool:
        return all(
            (
                all(env.collector.by_key(topics.team_topic(t), f"dk-{i}".encode()) for t in teams)
                if teams
                else bool(env.collector.by_key(topics.unrouted, f"dk-{i}".encode()))
            )
            for i, _, teams, _ in sent
        )

    await env.collector.wait_for(arrived)
    for alert_id, _, teams, fallback in sent:
        key = f"dk-{alert_id}".encode()
        for team in TEAMS_ALL:
            copies = env.collector.by_key(topics.team_topic(team), key)
            assert len(copies) == (1 if team in teams else 0), (alert_id, team)
            for copy in copies:
                headers = RoutedHeaders.from_kafka(copy.headers)
                assert headers.alert_id == alert_id
                assert headers.team == team
                assert headers.ruleset_version == 3
                assert headers.source_topic == topics.alerts
                assert headers.token_id
                assert headers.token_id not in env.publisher_token
                assert Alert.model_validate_json(copy.value).id == alert_id
                assert all(k != "authorization" for k, _ in copy.headers)
        unrouted = env.collector.by_key(topics.unrouted, key)
        assert len(unrouted) == (0 if teams else 1)

        decision = await _decision(env, alert_id)
        assert list(decision.teams) == teams
        assert decision.outcome == ("routed" if teams else "unrouted")
        assert decision.fallback is fallback
        assert decision.ruleset_version == 3
        assert len(decision.published) == max(len(teams), 1)


TEAMS_ALL = ("dba", "sre", "frontend", "oncall", "payments")


async def _decision(env: RouterEnv, alert_id: str) -> Decision:
    for _ in range(100):  # decisions are written right before the batch's commit
        decision = await env.store.get(alert_id)
        if decision is not None:
            return decision
        await asyncio.sleep(0.05)
    raise AssertionError(f"no decision stored for {alert_id}")


async def test_team_token_stamps_the_alert_with_its_team(router_env: RouterEnv) -> None:
    env, topics = router_env, router_env.settings.topics
    raw, principal = await issue_token(env.redis, env.tokens, kind="team", team="payments")
    alert_id = uuid.uuid4().hex
    await env.sender.send(
        alert_body(id=alert_id, team="someone-else", service="web", environment="dev"),
        token=raw,
    )
    key = alert_id.encode()
    await env.collector.wait_for(
        lambda: bool(env.collector.by_key(topics.team_topic("payments"), key))
    )
    copies = env.collector.by_key(topics.team_topic("payments"), key)
    assert Alert.model_validate_json(copies[0].value).team == "payments"
    assert RoutedHeaders.from_kafka(copies[0].headers).token_id == principal.token_id


async def test_a_batch_of_many_alerts_is_routed_once_each(router_env: RouterEnv) -> None:
    env, topics = router_env, router_env.settings.topics
    ids = [uuid.uuid4().hex for _ in range(500)]
    await env.sender.send_many(
        ((i.encode(), alert_body(id=i, service="cache")) for i in ids), token=env.publisher_token
    )
    wanted = set(ids)

    def all_there() -> bool:
        got = {r.key.decode() for r in env.collector.records[topics.team_topic("dba")] if r.key}
        return wanted <= got

    await env.collector.wait_for(all_there, within=30)
    for _ in range(100):  # metrics are counted right after the batch's commit
        routed = env.router.metrics.registry.get_sample_value(
            "alertyard_router_alerts_routed_total", {"team": "dba"}
        )
        if routed is not None and routed >= 500:
            break
        await asyncio.sleep(0.05)
    assert routed is not None
    assert routed >= 500
    copies = [
        r
        for r in env.collector.records[topics.team_topic("dba")]
        if r.key and r.key.decode() in wanted
    ]
    assert len(copies) == 500  # no duplicates without a crash
