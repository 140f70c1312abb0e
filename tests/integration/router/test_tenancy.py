"""Tenancy end to end: rules written through the rules API, alerts routed by the real router on
real Kafka with the live ruleset from real Redis.

A team's rules only see alerts from sources the team owns (its team tokens, sources an admin
assigned to it): a team catch-all changes nothing for anyone else's alerts, fallback included.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from services.router.decisions import DecisionStore, DecisionWriter
from services.router.engine import AlertRouter
from services.rules.control.api import build_rules_api
from services.rules.control.live import LiveRuleset
from services.rules.control.store import RulesStore
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.http import install_error_handlers
from shared.redis import make_redis
from shared.settings import TopicSettings
from shared.teams import TEAMS_KEY
from shared.tokens.validator import build_validator
from tests.integration.router._harness import AlertSender, Collector, alert_body, router_settings

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

TEAMS = ("payments", "search", "platform", "dba")

ORG_RULES = """
rules:
  - name: databases
    owner_team: dba
    destinations: [dba]
    condition_groups:
      - conditions: [{field: service, operator: equals, value: db}]
  - name: everything-else
    owner_team: platform
    fallback: true
    destinations: [platform]
"""


@dataclass
class Tenancy:
    api: httpx.AsyncClient
    live: LiveRuleset
    store: RulesStore
    sender: AlertSender
    collector: Collector
    topics: TopicSettings
    bearer: dict[str, dict[str, str]]
    raw: dict[str, str]
    token_ids: dict[str, str]

    async def send(self, who: str, **fields: Any) -> bytes:
        """Publish an alert with ``who``'s token; its Kafka key (the dedup key)."""
        alert_id = uuid.uuid4().hex
        key = f"dk-{alert_id}"
        await self.sender.send(
            alert_body(id=alert_id, dedup_key=key, **fields), token=self.raw[who]
        )
        return key.encode()

    async def refresh(self) -> None:
        """Make the router use the stored version now (the live loop would, within 1 s)."""
        await self.live.refresh()
        assert self.live.current.version == await self.store.get_version()

    def teams_of(self, key: bytes) -> list[str]:
        return sorted(t for t in TEAMS if self.collector.by_key(self.topics.team_topic(t), key))

    async def routed(self, expected: dict[bytes, list[str]]) -> None:
        """Wait until every alert reached its teams, then assert it reached no others."""
        await self.collector.wait_for(
            lambda: all(set(teams) <= set(self.teams_of(k)) for k, teams in expected.items())
        )
        # Everything sent before a marker has been routed once the marker arrived.
        marker = await self.send("publisher", service="db")
        await self.collector.wait_for(lambda: self.teams_of(marker) == ["dba"])
        for key, teams in expected.items():
            assert self.teams_of(key) == sorted(teams), key


@pytest.fixture
async def tenancy(kafka_bootstrap: str, redis_url: str) -> AsyncIterator[Tenancy]:
    redis: Redis = make_redis(redis_url)
    await redis.flushdb()
    tokens = test_settings(redis_url)
    raw: dict[str, str] = {}
    token_ids: dict[str, str] = {}
    for who, kwargs in {
        "admin": {"kind": "global"},
        "publisher": {"kind": "global", "permissions": [Permission.alerts_publish]},
        "payments": {"kind": "team", "team": "payments"},
        "search": {"kind": "team", "team": "search"},
    }.items():
        raw[who], principal = await issue_token(redis, tokens, **kwargs)  # type: ignore[arg-type]
        token_ids[who] = principal.token_id
    for team in TEAMS:
        await redis.sadd(TEAMS_KEY, team)
    validator = build_validator(tokens, redis)
    await validator.start()
    store = RulesStore(redis)
    live = LiveRuleset(store, check_interval_s=30.0)  # the test swaps versions itself
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_rules_api())
    app.state.rules_store = store
    app.state.validator = validator
    bearer = {who: {"authorization": f"Bearer {token}"} for who, token in raw.items()}
    settings = router_settings(kafka_bootstrap, redis_url)
    topics = settings.topics
    router = AlertRouter(
        settings,
        validator=validator,
        ruleset=live,
        decisions=DecisionWriter(DecisionStore(redis, retention_s=600), max_buffered=10_000),
    )
    collector = Collector(kafka_bootstrap, [topics.team_topic(t) for t in TEAMS])
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    applied = await client.post(
        "/v1/rules/apply",
        content=ORG_RULES,
        headers={**bearer["admin"], "content-type": "application/yaml"},
    )
    assert applied.status_code == 200, applied.text
    await live.start()
    await collector.start()
    await router.start()
    task = asyncio.create_task(router.run())
    sender = AlertSender(kafka_bootstrap, topics.alerts)
    await sender.__aenter__()
    try:
        yield Tenancy(client, live, store, sender, collector, topics, bearer, raw, token_ids)
    finally:
        await sender.__aexit__()
        await router.stop()
        await task
        await collector.stop()
        await live.stop()
        await client.aclose()
        await validator.stop()
        await redis.flushdb()
        await redis.aclose()


async def test_a_team_catch_all_changes_nothing_for_sources_it_does_not_own(
    tenancy: Tenancy,
) -> None:
    t = tenancy
    before = {
        "publisher": await t.send("publisher", service="web"),
        "search": await t.send("search", service="web"),
        "payments": await t.send("payments", service="web"),
    }
    await t.routed({key: ["platform"] for key in before.values()})

    # payments writes the two rules of issue #11: a catch-all and a "copy me everything else".
    for body in (
        {"name": "payments-all", "owner_team": "payments", "destinations": ["payments"]},
        {
            "name": "payments-copies",
            "owner_team": "payments",
            "destinations": ["payments"],
            "continue": True,
            "condition_groups": [
                {"conditions": [{"field": "service", "operator": "is_not_one_of", "values": ["x"]}]}
            ],
        },
        {
            "name": "payments-fallback",
            "owner_team": "payments",
            "destinations": ["payments"],
            "fallback": True,
        },
    ):
        created = await t.api.post("/v1/rules", headers=t.bearer["payments"], json=body)
        assert created.status_code == 201, created.text
        assert created.json()["rule"]["scope"] == "team"
    await t.refresh()

    after = {
        "publisher": await t.send("publisher", service="web"),
        "search": await t.send("search", service="web"),
        "search-db": await t.send("search", service="db"),
        "payments": await t.send("payments", service="web"),
        "payments-db": await t.send("payments", service="db"),
    }
    await t.routed(
        {
            after["publisher"]: ["platform"],  # fallback unchanged
            after["search"]: ["platform"],  # fallback unchanged
            after["search-db"]: ["dba"],  # org rule unchanged, no copy for payments
            after["payments"]: ["payments"],  # its own source: its catch-all takes it
            after["payments-db"]: ["dba"],  # org rules come first, for its own alerts too
        }
    )

    # explain says why the payments rules did not apply to the search team's alert.
    explained = await t.api.post(
        "/v1/rules/explain",
        headers=t.bearer["admin"],
        json={"alert": {"service": "web"}, "source": {"token_id": t.token_ids["search"]}},
    )
    body = explained.json()
    assert body["teams"] == ["platform"]
    assert body["source"]["owners"] == ["search"]
    assert [r["name"] for r in body["out_of_scope"]] == [
        "payments-all",
        "payments-copies",
        "payments-fallback",
    ]


async def test_admins_assign_sources_and_route_anything(tenancy: Tenancy) -> None:
    t = tenancy
    created = await t.api.post(
        "/v1/rules",
        headers=t.bearer["payments"],
        json={"name": "payments-all", "owner_team": "payments", "destinations": ["payments"]},
    )
    assert created.status_code == 201, created.text
    publisher = t.token_ids["publisher"]

    # A team cannot claim a source, nor write an org rule; nothing changes.
    version = await t.store.get_version()
    claimed = await t.api.put(
        f"/v1/rules/sources/{publisher}",
        headers=t.bearer["payments"],
        json={"teams": ["payments"]},
    )
    assert claimed.status_code == 403
    org = await t.api.post(
        "/v1/rules",
        headers=t.bearer["payments"],
        json={
            "name": "payments-org",
            "owner_team": "payments",
            "scope": "org",
            "destinations": ["payments"],
        },
    )
    assert org.status_code == 403
    assert await t.store.get_version() == version

    # An admin assigns the global publisher's alerts to payments: its team rules now see them.
    assigned = await t.api.put(
        f"/v1/rules/sources/{publisher}", headers=t.bearer["admin"], json={"teams": ["payments"]}
    )
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["teams"] == ["payments"]
    listed = await t.api.get("/v1/rules/sources", headers=t.bearer["admin"])
    assert listed.json()["sources"] == {publisher: ["payments"]}
    # And an admin's org rule routes the search team's alerts anywhere, e.g. to payments.
    admin_rule = await t.api.post(
        "/v1/rules?position=0",
        headers=t.bearer["admin"],
        json={
            "name": "search-web-to-payments",
            "owner_team": "platform",
            "destinations": ["payments"],
            "condition_groups": [
                {"conditions": [{"field": "service", "operator": "equals", "value": "search-web"}]}
            ],
        },
    )
    assert admin_rule.status_code == 201, admin_rule.text
    assert admin_rule.json()["rule"]["scope"] == "org"
    await t.refresh()

    sent = {
        await t.send("publisher", service="web"): ["payments"],
        await t.send("search", service="web"): ["platform"],
        await t.send("search", service="search-web"): ["payments"],
    }
    await t.routed(sent)

    # Unassigning gives the publisher's alerts back to the org's fallback.
    removed = await t.api.delete(f"/v1/rules/sources/{publisher}", headers=t.bearer["admin"])
    assert removed.status_code == 200, removed.text
    await t.refresh()
    again = await t.send("publisher", service="web")
    await t.routed({again: ["platform"]})
