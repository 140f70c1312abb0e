"""The decision store's layout on real Redis: one hash per shard, expiry by the ``all`` index,
and decisions written by routers before the hash still read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from redis.asyncio import Redis

from services.router.decisions import (
    Decision,
    DecisionStore,
    decision_key,
    decisions_key,
    index_key,
)
from shared.keyspace import DECISION_SHARDS, decision_shard
from tests.integration._decisions import decision_for

pytestmark = pytest.mark.redis

RETENTION_S = 3600
NOW = datetime.now(UTC)
EXPIRED = NOW - timedelta(seconds=2 * RETENTION_S)  # hours past the cutoff, whatever the clock


def _decision(alert_id: str, at: datetime) -> Decision:
    return decision_for(alert_id, "ops", at)


def _same_shard(count: int) -> list[str]:
    """``count`` alert ids of one shard (expiry is per shard)."""
    ids = (f"x{n}" for n in range(10_000))
    return [i for i in ids if decision_shard(i) == 0][:count]


async def test_decisions_are_hash_entries_without_a_key_each(redis: Redis) -> None:
    store = DecisionStore(redis, retention_s=RETENTION_S)
    decisions = [_decision(f"a{n}", NOW) for n in range(40)]
    await store.write_many([d.to_record() for d in decisions])
    assert await store.get_many([d.alert_id for d in decisions]) == decisions
    assert await redis.exists(*(decision_key(d.alert_id) for d in decisions)) == 0
    stored = sum([await redis.hlen(decisions_key(s)) for s in range(DECISION_SHARDS)])
    assert stored == len(decisions)
    assert 0 < await redis.ttl(decisions_key(decision_shard("a0"))) <= RETENTION_S


async def test_a_decision_written_by_an_older_router_is_still_read(redis: Redis) -> None:
    store = DecisionStore(redis, retention_s=RETENTION_S)
    older = _decision("old-1", NOW)
    await redis.set(decision_key("old-1"), older.to_record().body, ex=RETENTION_S)
    newer = _decision("new-1", NOW)
    await store.write_many([newer.to_record()])
    assert await store.get("old-1") == older
    assert await store.get_many(["new-1", "old-1", "none"]) == [newer, older, None]


async def test_expired_decisions_are_deleted_with_their_index_members(redis: Redis) -> None:
    store = DecisionStore(redis, retention_s=RETENTION_S)
    gone, kept, rewritten = _same_shard(3)
    await store.write_many([_decision(i, EXPIRED).to_record() for i in (gone, rewritten)])
    again = _decision(rewritten, NOW)  # the same alert id written again, within retention
    await store.write_many([_decision(kept, NOW).to_record(), again.to_record()])
    assert await store.get_many([gone, kept, rewritten]) == [None, _decision(kept, NOW), again]
    members = [
        m.decode() for m in cast(list[bytes], await redis.zrange(index_key(0, "all"), 0, -1))
    ]
    assert sorted(m.partition(":")[2] for m in members) == sorted([kept, rewritten])
    assert await redis.hlen(decisions_key(0)) == 2
    page = await store.page(scope="team:ops", limit=10)
    assert sorted(d.alert_id for d in page.items) == sorted([kept, rewritten])
