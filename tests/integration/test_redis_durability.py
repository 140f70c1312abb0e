"""Redis is the system of record: kill -9 of redis-server and a restart lose nothing.

The server runs with the stack's own settings (stack/redis.conf: AOF, fsync every second).
A killed process loses nothing it acknowledged, because Redis writes the AOF buffer to the
kernel before it replies; only a machine crash can lose the last second (docs/operations.md).
"""

from __future__ import annotations

from typing import cast

import pytest

from services.rules.control.store import RulesStore
from services.rules.engine.model import parse_rule
from services.tokens.service import TokenService
from services.tokens.testing import test_settings
from shared.auth import Permission, TokenKind
from shared.outbox import outbox_key
from shared.tokens.permissions import Role
from shared.tokens.validator import build_validator
from tests.integration._redis_server import ThrowawayRedis

pytestmark = [pytest.mark.redis]


async def test_kill9_and_restart_lose_no_token_user_team_rule_or_outbox_entry(
    own_redis: ThrowawayRedis,
) -> None:
    settings = test_settings(own_redis.url)
    redis = own_redis.client()
    service = TokenService(redis, settings)
    await service.create_team(name="payments", actor=None)
    user = await service.create_user(
        email="lead@example.test", role=Role.member, teams=["payments"], actor=None
    )
    user_token = await service.create_token(
        kind=TokenKind.user, name="lead", actor=None, user_id=user.id
    )
    producer = await service.create_token(
        kind=TokenKind.global_,
        name="producer",
        actor=None,
        permissions=[Permission("alerts:publish")],
    )
    rules = RulesStore(redis)
    rule, version = await rules.create_rule(
        parse_rule(
            {
                "name": "payments-billing",
                "owner_team": "payments",
                "destinations": ["payments"],
                "condition_groups": [
                    {"conditions": [{"field": "service", "operator": "is_one_of", "values": ["b"]}]}
                ],
            }
        ),
        principal=None,
    )
    outboxes = {
        source: cast(list[object], await redis.xrange(outbox_key(source)))
        for source in ("tokens", "rules")
    }
    assert all(outboxes.values()), "the changes above staged their events"
    await redis.aclose()

    own_redis.kill9()  # immediately after the last acknowledged write
    await own_redis.start()

    redis = own_redis.client()
    try:
        service = TokenService(redis, settings)
        assert [t.name for t in await service.list_teams()] == ["payments"]
        assert (await service.get_user(user_id=user.id)).teams == user.teams
        validator = build_validator(settings, redis)
        try:
            assert (await validator.authenticate(producer.raw)).token_id == producer.token.id
            assert (await validator.authenticate(user_token.raw)).token_id == user_token.token.id
        finally:
            await validator.stop()
        stored, stored_version = await RulesStore(redis).get_rule("payments-billing")
        assert (stored, stored_version) == (rule, version)
        for source, entries in outboxes.items():
            assert await redis.xrange(outbox_key(source)) == entries
    finally:
        await redis.aclose()
