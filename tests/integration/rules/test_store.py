"""The Redis store: versions, atomic changes with their events, optimistic concurrency."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from redis.asyncio import Redis

from services.rules.control.store import RulesStore
from services.rules.engine.errors import (
    RuleNotFoundError,
    UnknownTeamError,
    VersionConflictError,
)
from services.rules.engine.model import parse_rule
from shared.auth import Permission, Principal, TokenKind
from shared.outbox import outbox_key
from tests.integration.rules._fixtures import add_teams, simple_rule, two_team_ruleset

pytestmark = pytest.mark.redis

ADMIN = Principal(
    token_id="tok_admin",
    kind=TokenKind.global_,
    permissions=frozenset(Permission),
    is_admin=True,
)


async def _events(redis: Redis) -> list[dict[str, Any]]:
    entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis.xrange(outbox_key("rules")))
    return [json.loads(fields[b"event"]) for _, fields in entries]


async def test_apply_versions_and_events(redis: Redis) -> None:
    await add_teams(redis)
    store = RulesStore(redis)
    assert (await store.get_ruleset()).version == 0

    result = await store.apply(two_team_ruleset(), principal=ADMIN, expected_version=0)
    assert result.applied
    assert result.version == 1
    assert await store.get_version() == 1
    stored = await store.get_ruleset()
    assert [r.name for r in stored.rules] == ["payments-billing", "search-index", "fallback"]

    # Applying the same file again changes nothing and keeps the version (GitOps idempotency).
    again = await store.apply(two_team_ruleset(), principal=ADMIN)
    assert not again.applied
    assert again.version == 1
    assert [r.id for r in (await store.get_ruleset()).rules] == [r.id for r in stored.rules]

    events = await _events(redis)
    assert [e["type"] for e in events] == ["ruleset.applied"]
    event = events[0]
    assert event["source"] == "rules"
    assert event["actor"]["token_id"] == "tok_admin"
    assert event["data"]["version"] == 1
    assert event["data"]["version_before"] == 0
    assert [r["name"] for r in event["data"]["added"]] == [
        "payments-billing",
        "search-index",
        "fallback",
    ]


async def test_single_rule_changes_emit_before_and_after(redis: Redis) -> None:
    await add_teams(redis)
    store = RulesStore(redis)
    await store.apply(two_team_ruleset(), principal=ADMIN)

    created, version = await store.create_rule(
        parse_rule(simple_rule("security-auth", "security", "auth")), principal=ADMIN
    )
    assert version == 2
    assert created.position == 3

    updated, version = await store.update_rule(
        "security-auth",
        parse_rule(simple_rule("security-auth", "security", "sso")),
        principal=ADMIN,
        expected_version=2,
    )
    assert version == 3
    assert updated.id == created.id
    assert updated.condition_groups[0].conditions[0].values == ("sso",)

    assert await store.delete_rule(created.id, principal=ADMIN) == 4
    with pytest.raises(RuleNotFoundError):
        await store.get_rule(created.id)

    events = await _events(redis)
    assert [e["type"] for e in events] == [
        "ruleset.applied",
        "rule.created",
        "rule.updated",
        "rule.deleted",
    ]
    update = events[2]["data"]
    assert update["before"]["condition_groups"][0]["conditions"][0]["values"] == ["auth"]
    assert update["after"]["condition_groups"][0]["conditions"][0]["values"] == ["sso"]
    assert events[3]["subject"] == f"rule/{created.id}"


async def test_expected_version_conflict_changes_nothing(redis: Redis) -> None:
    await add_teams(redis)
    store = RulesStore(redis)
    await store.apply(two_team_ruleset(), principal=ADMIN)
    with pytest.raises(VersionConflictError) as info:
        await store.delete_rule("search-index", principal=ADMIN, expected_version=0)
    assert info.value.http_status == 409
    assert await store.get_version() == 1
    assert len(await _events(redis)) == 1


async def test_unknown_team_is_refused_with_rule_name(redis: Redis) -> None:
    await add_teams(redis, "payments")
    store = RulesStore(redis)
    with pytest.raises(UnknownTeamError) as info:
        await store.create_rule(parse_rule(simple_rule("ghost-a", "ghosts", "x")), principal=None)
    assert info.value.code == "unknown_team"
    assert info.value.problems[0]["rule"] == "ghost-a"
    assert await store.get_version() == 0
    assert await _events(redis) == []


async def test_dry_run_reports_diff_without_writing(redis: Redis) -> None:
    await add_teams(redis)
    store = RulesStore(redis)
    await store.apply(two_team_ruleset(), principal=ADMIN)
    draft = two_team_ruleset().model_copy(
        update={"rules": (two_team_ruleset().rules[1], two_team_ruleset().rules[2])}
    )
    result = await store.apply(draft, principal=ADMIN, dry_run=True)
    assert not result.applied
    assert [r["name"] for r in result.diff["removed"]] == ["payments-billing"]
    assert await store.get_version() == 1


async def test_reorder_and_concurrent_writers(redis: Redis) -> None:
    await add_teams(redis)
    store = RulesStore(redis)
    await store.apply(two_team_ruleset(), principal=ADMIN)
    result = await store.reorder(
        ["search-index", "payments-billing", "fallback"], principal=ADMIN, expected_version=1
    )
    assert [r.name for r in result.after.rules] == ["search-index", "payments-billing", "fallback"]
    assert [m["name"] for m in result.diff["moved"]] == ["search-index", "payments-billing"]

    # Writers without an expected version retry on a lost race; every change gets a version.
    names = [f"payments-{n}" for n in range(8)]
    await asyncio.gather(
        *(
            store.create_rule(parse_rule(simple_rule(name, "payments", name)), principal=ADMIN)
            for name in names
        )
    )
    final = await store.get_ruleset()
    assert final.version == 2 + len(names)
    assert {r.name for r in final.rules} >= set(names)
