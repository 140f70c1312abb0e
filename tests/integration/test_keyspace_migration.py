"""A Redis written before the cluster-safe key layout keeps its tokens, teams, rules, outbox and
decisions after an upgrade (#14): the first start moves the keys, later starts do nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.keyspace_migration import migrate_at_start, migrate_decisions, migrate_keyspace
from services.router.decisions import Decision, DecisionStore
from services.rules.control.store import RulesStore
from services.rules.engine.model import Ruleset
from services.tokens.service import TokenService
from services.tokens.testing import test_settings
from shared.outbox import outbox_keys
from shared.tokens.permissions import Role
from tests.integration._redis_server import ThrowawayRedis

pytestmark = [pytest.mark.redis]

RULESET = Ruleset.model_validate(
    {"rules": [{"name": "all", "owner_team": "ops", "destinations": ["ops"], "fallback": True}]}
)


def _decision(alert_id: str) -> Decision:
    now = datetime.now(UTC)
    return Decision(
        alert_id=alert_id, outcome="routed", alert_status="firing", severity="error",
        dedup_key=alert_id, teams=("ops",), rule_ids=("r1",), ruleset_version=1, fallback=False,
        token_id="tok_1", received_at=now, routed_at=now, source_topic="alerts",
        source_partition=0, source_offset=1,
    )  # fmt: skip


async def test_legacy_keys_move_once(own_redis: ThrowawayRedis) -> None:
    redis = own_redis.client()
    tokens = test_settings(own_redis.url)
    service = TokenService(redis, tokens)
    await service.create_team(name="ops", actor=None)
    await RulesStore(redis).apply(RULESET, principal=None)
    created = await service.create_user(email="a@example.com", role=Role.admin, actor=None)
    # Rename what the current code wrote to the names the previous layout used.
    legacy = {}
    async for key in redis.scan_iter(match="alertyard:{control}:*"):
        old = key.decode().replace("alertyard:{control}:", "alertyard:")
        if ":outbox:" in old:
            old = old.replace("alertyard:outbox:tokens", "alertyard:outbox:{tokens}")
            old = old.replace("alertyard:outbox:rules", "alertyard:outbox:{rules}")
        legacy[old] = key.decode()
        await redis.rename(key, old)
    decision = _decision("a1")
    await redis.set("alertyard:decision:a1", decision.model_dump_json())
    await redis.zadd("alertyard:decisions:all", {decision.to_record().member: 0})
    assert "alertyard:teams" in legacy
    assert "alertyard:rules:current" in legacy

    await migrate_at_start(redis, DecisionStore(redis, retention_s=600))

    for old, new in legacy.items():
        assert not await redis.exists(old), old
        assert await redis.exists(new), new
    assert [t.name for t in await service.list_teams()] == ["ops"]
    assert (await service.get_user(user_id=created.id)).email == "a@example.com"
    assert (await RulesStore(redis).get_ruleset()).rules[0].name == "all"
    assert await redis.xlen(outbox_keys("tokens").stream) == 2
    store = DecisionStore(redis, retention_s=600)
    assert await store.get("a1") == decision
    assert [d.alert_id for d in (await store.page(scope="all", limit=10)).items] == ["a1"]
    assert not await redis.exists("alertyard:decision:a1", "alertyard:decisions:all")
    assert await migrate_keyspace(redis) == 0  # the marker: nothing to scan again
    assert await migrate_decisions(redis, store) == 0
    await redis.aclose()
