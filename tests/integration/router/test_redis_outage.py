"""Redis dies and comes back while alerts flow: routing goes on with the cached ruleset and
token, nothing is lost, and the buffered decisions reach Redis once it is back.

This is the opt-out path (``ALERTYARD_ROUTER_DECISIONS_VIA_TOPIC=false``, the in-memory
writer); the default path is drilled in test_drill_redis_kill9.py and
test_drill_decisions_topic.py.

Uses a throwaway redis-server of its own (never the shared one) on the stack's settings
(append-only file), so the restart keeps the stored tokens and rules as a real restart would.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.router.decisions import DecisionStore, DecisionWriter
from services.router.engine import AlertRouter
from services.rules.control.live import LiveRuleset
from services.rules.control.store import RulesStore
from services.rules.engine.model import Ruleset
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.redis import make_redis
from shared.tokens.validator import build_validator
from tests._waiting import eventually
from tests.integration._redis_server import ThrowawayRedis
from tests.integration.router._harness import (
    AlertSender,
    Collector,
    alert_body,
    router_settings,
    seed_rules_and_token,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

RULESET = Ruleset.model_validate(
    {
        "rules": [
            {
                "name": "web",
                "owner_team": "frontend",
                "condition_groups": [
                    {"conditions": [{"field": "service", "operator": "equals", "value": "web"}]}
                ],
                "destinations": ["frontend"],
            }
        ]
    }
)


class AuthAttempts:
    """Validator metrics that let the test await a given outcome instead of sleeping."""

    def __init__(self) -> None:
        self.seen: dict[str, asyncio.Event] = {}

    def event(self, outcome: str) -> asyncio.Event:
        return self.seen.setdefault(outcome, asyncio.Event())

    def authentication(self, outcome: str) -> None:
        self.event(outcome).set()

    def cache_lookup(self, *, hit: bool) -> None:
        pass


async def test_redis_restart_during_routing_loses_nothing(
    kafka_bootstrap: str, own_redis: ThrowawayRedis
) -> None:
    redis = make_redis(own_redis.url)
    tokens = test_settings(own_redis.url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    unused, _ = await issue_token(
        redis, tokens, kind="global", permissions=[Permission.alerts_publish]
    )
    settings = router_settings(kafka_bootstrap, own_redis.url, decisions_via_topic=False)
    attempts = AuthAttempts()
    validator = build_validator(tokens, redis, metrics=attempts)
    live = LiveRuleset(RulesStore(redis), check_interval_s=0.2)
    store = DecisionStore(redis, retention_s=3600)
    writer = DecisionWriter(store, max_buffered=10_000, timeout_s=0.5)
    router = AlertRouter(settings, validator=validator, ruleset=live, decisions=writer)
    team_topic = settings.topics.team_topic("frontend")
    collector = Collector(kafka_bootstrap, [team_topic])
    await collector.start()
    await validator.start()
    await live.start()
    await router.start()
    task = asyncio.create_task(router.run())
    ids: list[str] = []

    def received() -> set[str]:
        return {r.key.decode() for r in collector.records[team_topic] if r.key}

    async def send_wave(sender: AlertSender) -> None:
        wave = [uuid.uuid4().hex for _ in range(100)]
        ids.extend(wave)
        await sender.send_many(
            ((i.encode(), alert_body(id=i, service="web")) for i in wave), token=token
        )
        await collector.wait_for(lambda: set(ids) <= received(), within=30)

    try:
        async with AlertSender(kafka_bootstrap, settings.topics.alerts) as sender:
            await send_wave(sender)  # Redis up
            own_redis.kill9()
            await send_wave(sender)  # Redis down: cached ruleset and token keep routing
            assert live.loaded
            # Lookups wait for Redis; routing did not. A batch's decisions are recorded after
            # its copies are acknowledged, so the team reader can see the copies first.
            await eventually(lambda: writer.buffered >= 100, what="the wave's decisions buffered")
            # A token never seen before cannot be checked now: the alert waits, it is not
            # rejected, and goes through once Redis is back.
            late = uuid.uuid4().hex
            ids.append(late)
            await sender.send(alert_body(id=late, service="web"), token=unused, key=late.encode())
            unavailable = attempts.event("auth_unavailable")
            unavailable.clear()
            async with asyncio.timeout(30):
                await unavailable.wait()  # the router tried the token and Redis could not say
            assert late not in received()
            await own_redis.start()
            await send_wave(sender)  # Redis back
        for _ in range(100):  # the writer retries with backoff; lookups catch up
            if all([await store.get(i) is not None for i in ids]):
                break
            await asyncio.sleep(0.1)
        missing = [i for i in ids if await store.get(i) is None]
        assert not missing, f"{len(missing)} decisions never reached Redis"
        assert len(received()) == 301
    finally:
        await router.stop()
        await task
        await live.stop()
        await validator.stop()
        await collector.stop()
        await redis.aclose()
