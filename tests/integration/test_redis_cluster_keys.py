"""Every Lua script and transaction runs on a real Redis in cluster mode (#14).

A one-node Redis Cluster owning every slot refuses a script call or a ``MULTI`` whose keys span
slots (``CROSSSLOT``), exactly as a real cluster does. Each write path runs against it: token,
user and team changes (WATCH + MULTI with the outbox event), rules changes, the outbox relay's
lease and fenced delete, the decision write script and the reads behind lookups. The first
tests show the check has teeth: the old layouts are refused.

Redis 7.0 does not refuse a script's *undeclared* key in another slot on a node that owns it;
tests/unit/test_lua_scripts_declare_keys.py checks the scripts' sources for that.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.keyspace_migration import migrate_at_start
from services.router.decisions import _WRITE_SCRIPT, DecisionStore
from services.rules.control.store import RulesStore
from services.rules.engine.model import Ruleset
from services.tokens.service import TokenService
from services.tokens.testing import test_settings
from shared.auth import Permission, TokenKind
from shared.http_auth import FailedAuthLimiter
from shared.keyspace import DECISION_SHARDS, decision_shard
from shared.outbox import OutboxRelay, make_relay_producer, outbox_key
from shared.settings import RouterSettings
from shared.tokens.permissions import Role
from shared.tokens.validator import build_validator
from tests.integration._decisions import decision_for
from tests.integration._redis_server import ThrowawayRedis

pytestmark = [pytest.mark.redis]

CROSSSLOT = r"CROSSSLOT|same slot"
RULESET = Ruleset.model_validate(
    {"rules": [{"name": "all", "owner_team": "ops", "destinations": ["ops"], "fallback": True}]}
)


@pytest.fixture(scope="module")
async def cluster() -> AsyncIterator[ThrowawayRedis]:
    server = ThrowawayRedis(cluster=True)
    await server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(cluster: ThrowawayRedis) -> AsyncIterator[Redis]:
    client = cluster.client()
    yield client
    await client.flushdb()
    await client.aclose()


async def test_the_cluster_refuses_keys_of_two_slots(redis: Redis) -> None:
    with pytest.raises(ResponseError, match=CROSSSLOT):
        await redis.eval("return 1", 2, "alertyard:decision:a", "alertyard:decisions:all")
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set("alertyard:token:t1", b"{}")
        pipe.sadd("alertyard:tokens", "t1")
        with pytest.raises(ResponseError, match=CROSSSLOT):
            await pipe.execute()


async def test_the_old_decision_layout_is_refused(redis: Redis) -> None:
    """The script as it was called before: the decision keys and the indexes in many slots."""
    with pytest.raises(ResponseError, match=CROSSSLOT):
        await redis.eval(
            _WRITE_SCRIPT, 3, "alertyard:decision:a", "alertyard:decision:b",
            "alertyard:decisions:all", 60, "(0", '[["0:a","{}",3],["0:b","{}",3]]',
        )  # fmt: skip


async def test_decision_writes_and_lookups(redis: Redis) -> None:
    store = DecisionStore(redis, retention_s=3600)
    now = datetime.now(UTC)
    ids = [f"a{i:03d}" for i in range(200)]
    assert len({decision_shard(i) for i in ids}) == DECISION_SHARDS  # every shard is written
    decisions = [decision_for(i, "ops" if n % 2 else "dba", now) for n, i in enumerate(ids)]
    await store.write_many([d.to_record() for d in decisions])
    await store.write_many([d.to_record() for d in decisions[:10]])  # idempotent
    assert await store.get("a007") == decisions[7]
    assert [d.alert_id for d in await store.get_many(ids) if d] == ids
    pages: list[str] = []
    cursor: str | None = None
    while True:
        page = await store.page(scope="team:ops", limit=30, cursor=cursor)
        pages.extend(d.alert_id for d in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(pages) == [i for n, i in enumerate(ids) if n % 2]
    filtered = await store.page(scope="all", limit=500, severity="warning")
    assert len(filtered.items) == len(ids)


async def test_token_user_team_and_rules_changes(redis: Redis) -> None:
    settings = test_settings("unix:///unused")
    service = TokenService(redis, settings)
    await service.create_team(name="ops", actor=None)
    user = await service.create_user(email="a@example.com", role=Role.member, actor=None)
    await service.set_role(user_id=user.id, role=Role.admin, actor=None)
    created = await service.create_token(
        kind=TokenKind.global_,
        name="publisher",
        actor=None,
        permissions=[Permission.alerts_publish],
    )
    rotated = await service.rotate_token(token_id=created.token.id, actor=None, grace_s=60)
    validator = build_validator(settings, redis)
    try:
        assert (await validator.authenticate(rotated.raw)).token_id == created.token.id
    finally:
        await validator.stop()
    await service.revoke_token(token_id=created.token.id, actor=None)
    await service.deactivate_user(user_id=user.id, actor=None)
    assert await service.expire_due_tokens() == 0
    rules = RulesStore(redis)
    assert (await rules.apply(RULESET, principal=None)).applied
    assert (await rules.get_ruleset()).version == 1
    assert await redis.xlen(outbox_key("tokens")) >= 5
    assert await redis.xlen(outbox_key("rules")) >= 1


async def test_outbox_relay_lease_and_fenced_delete(redis: Redis, kafka_bootstrap: str) -> None:
    service = TokenService(redis, test_settings("unix:///unused"))
    for team in ("a", "b", "c"):
        await service.create_team(name=team, actor=None)
    producer = make_relay_producer(kafka_bootstrap)
    await producer.start()
    try:
        relay = OutboxRelay(redis, producer, source="tokens", topic=f"t-{uuid.uuid4().hex}")
        assert await relay.relay_once() == 3  # acquire, fenced delete
        assert relay.holds_lease
        assert await relay.relay_once() == 0  # extend
        rival = OutboxRelay(redis, producer, source="tokens", topic="unused")
        assert await rival.relay_once() == 0
        assert not rival.holds_lease
        relay.stop()
        await relay.run()  # returns at once (stopped) and releases the lease
        assert not relay.holds_lease
    finally:
        await producer.stop()
    assert await redis.xlen(outbox_key("tokens")) == 0


async def test_failed_auth_limiter_and_migration(cluster: ThrowawayRedis, redis: Redis) -> None:
    settings = RouterSettings(redis_url=cluster.url, auth_fail_limit=2)
    limiter = FailedAuthLimiter.from_settings(settings)
    for _ in range(3):
        await limiter.record_failure("10.0.0.1")
    assert await limiter.retry_after_s("10.0.0.1")
    await migrate_at_start(redis, DecisionStore(redis, retention_s=60))  # an empty Redis
