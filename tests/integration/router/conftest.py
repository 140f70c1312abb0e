"""One in-process router per module on unique topics, real Kafka, real Redis (the test db)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from redis.asyncio import Redis

from services.router.decisions import DecisionStore, DecisionWriter
from services.router.engine import AlertRouter
from services.rules.engine.model import Ruleset
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.redis import make_redis
from shared.settings import RouterSettings, TokensSettings
from shared.tokens.validator import RedisTokenValidator, build_validator
from tests.integration.router._harness import (
    AlertSender,
    Collector,
    StaticRuleset,
    decision_indexer,
    router_settings,
)

TEAMS = ("dba", "sre", "frontend", "oncall", "payments")

RULESET = Ruleset.model_validate(
    {
        "version": 3,
        "rules": [
            {
                "name": "databases",
                "owner_team": "dba",
                "condition_groups": [
                    {
                        "conditions": [
                            {"field": "service", "operator": "is_one_of", "values": ["db", "cache"]}
                        ]
                    }
                ],
                "destinations": ["dba"],
                "continue": True,
            },
            {
                "name": "db-pages-sre",
                "owner_team": "sre",
                "condition_groups": [
                    {"conditions": [{"field": "service", "operator": "equals", "value": "db"}]}
                ],
                "destinations": ["sre"],
            },
            {
                "name": "web-prod",
                "owner_team": "frontend",
                "condition_groups": [
                    {
                        "conditions": [
                            {"field": "service", "operator": "equals", "value": "web"},
                            {"field": "environment", "operator": "is_one_of", "values": ["prod"]},
                        ]
                    }
                ],
                "destinations": ["frontend"],
            },
            {
                "name": "payments-by-label",
                "owner_team": "payments",
                "condition_groups": [
                    {
                        "conditions": [
                            {"field": "labels.team", "operator": "equals", "value": "payments"}
                        ]
                    },
                    {"conditions": [{"field": "team", "operator": "equals", "value": "payments"}]},
                ],
                "destinations": ["payments"],
            },
            {
                "name": "critical-fallback",
                "owner_team": "sre",
                "condition_groups": [
                    {
                        "conditions": [
                            {"field": "severity", "operator": "equals", "value": "critical"}
                        ]
                    }
                ],
                "destinations": ["oncall"],
                "fallback": True,
            },
        ],
    }
)


@dataclass
class RouterEnv:
    settings: RouterSettings
    tokens: TokensSettings
    redis: Redis
    validator: RedisTokenValidator
    router: AlertRouter
    store: DecisionStore
    collector: Collector
    sender: AlertSender
    publisher_token: str


@pytest.fixture(scope="module")
async def router_env(kafka_bootstrap: str, redis_url: str) -> AsyncIterator[RouterEnv]:
    redis = make_redis(redis_url)
    await redis.flushdb()
    tokens = test_settings(redis_url)
    raw, _ = await issue_token(
        redis, tokens, kind="global", permissions=[Permission.alerts_publish]
    )
    validator = build_validator(tokens, redis)
    await validator.start()
    settings = router_settings(kafka_bootstrap, redis_url)
    store = DecisionStore(redis, retention_s=settings.decision_retention_s)
    router = AlertRouter(
        settings,
        validator=validator,
        ruleset=StaticRuleset(RULESET),
        decisions=DecisionWriter(store, max_buffered=10_000),
    )
    topics = settings.topics
    collector = Collector(
        kafka_bootstrap,
        [topics.team_topic(t) for t in TEAMS] + [topics.unrouted, topics.rejected],
    )
    await collector.start()
    await router.start()
    task = asyncio.create_task(router.run())
    sender = AlertSender(kafka_bootstrap, topics.alerts)
    await sender.__aenter__()
    async with asyncio.timeout(60):  # the group join takes a few seconds on a fresh group
        await router.partitions_assigned.wait()
    assert router.ready
    async with decision_indexer(settings, store):
        yield RouterEnv(settings, tokens, redis, validator, router, store, collector, sender, raw)
    await sender.__aexit__()
    await router.stop()
    await task
    await collector.stop()
    await validator.stop()
    await redis.flushdb()
    await redis.aclose()
