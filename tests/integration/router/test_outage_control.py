"""During a Redis outage an authentication retry never holds up a rebalance or a shutdown.

An alert carries a token the router has never seen while Redis is down: its batch waits in the
authentication retry. A second group member joins (a rebalance) and later the router is
stopped: both go ahead at once, the waiting batch is replayed (not lost, not committed), and it
is routed once Redis is back.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from services.router.decisions import DecisionStore, DecisionWriter
from services.router.engine import AlertRouter, consumer_settings
from services.rules.engine.model import Ruleset
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.kafka_native import NativeConsumer, PartitionKey, RebalanceHandler
from shared.tokens.validator import build_validator
from tests.integration._redis_server import ThrowawayRedis
from tests.integration.router._harness import (
    AlertSender,
    Collector,
    StaticRuleset,
    alert_body,
    router_settings,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

RULESET = Ruleset.model_validate(
    {"rules": [{"name": "all", "owner_team": "ops", "destinations": ["ops"], "fallback": True}]}
)
GUARD_S = 60  # a hang detector only: a blocked rebalance would wait max.poll.interval (300 s)


class _Joined(RebalanceHandler):
    """A second group member (the router's own assignor): set once it got partitions."""

    def __init__(self) -> None:
        self.assigned = asyncio.Event()

    async def on_assigned(self, partitions: list[PartitionKey]) -> None:
        if partitions:
            self.assigned.set()


async def _until_logged(logs: list[MutableMapping[str, Any]], event: str, after: int) -> int:
    """Wait until ``event`` is logged past index ``after``; returns its index."""
    async with asyncio.timeout(GUARD_S):
        while True:
            for i in range(after, len(logs)):
                if logs[i].get("event") == event:
                    return i
            await asyncio.sleep(0.02)  # polling the captured log, not a timed wait


async def test_auth_retry_gives_way_to_rebalance_and_shutdown(
    kafka_bootstrap: str, own_redis: ThrowawayRedis
) -> None:
    redis = own_redis.client()
    tokens = test_settings(own_redis.url)
    unseen, _ = await issue_token(
        redis, tokens, kind="global", permissions=[Permission.alerts_publish]
    )
    await redis.aclose()
    settings = router_settings(
        kafka_bootstrap, own_redis.url, shutdown_drain_s=GUARD_S * 2, publish_retry_max_backoff_s=5
    )
    validator = build_validator(tokens, own_redis.client())
    writer = DecisionWriter(DecisionStore(own_redis.client(), retention_s=60), max_buffered=100)
    router = AlertRouter(
        settings, validator=validator, ruleset=StaticRuleset(RULESET), decisions=writer
    )
    team_topic = settings.topics.team_topic("ops")
    collector = Collector(kafka_bootstrap, [team_topic])
    await collector.start()
    await validator.start()
    await router.start()
    task = asyncio.create_task(router.run())
    alert_id = uuid.uuid4().hex
    try:
        with capture_logs() as logs:
            own_redis.kill9()
            async with AlertSender(kafka_bootstrap, settings.topics.alerts) as sender:
                await sender.send(alert_body(id=alert_id), token=unseen, key=alert_id.encode())
            seen = await _until_logged(logs, "auth_retry", 0)

            # A second member joins: the revoke callback must not wait for Redis.
            joined = _Joined()
            other = NativeConsumer(consumer_settings(settings), [settings.topics.alerts], joined)
            await other.start()
            async with asyncio.timeout(GUARD_S):
                while not joined.assigned.is_set():
                    await other.fetch(10, 0.2)  # poll so the join completes
            deferred = await _until_logged(logs, "batch_deferred_for_control", seen)
            await other.close()  # leaves without committing: the router gets everything back

            await own_redis.start()  # Redis is back: the replayed batch is routed
            await collector.wait_for(
                lambda: any(r.key == alert_id.encode() for r in collector.records[team_topic]),
                within=GUARD_S,
            )
            assert deferred > seen

            # Shutdown during an outage: the run loop leaves the retry and exits by itself.
            late = uuid.uuid4().hex
            second, _ = await issue_token(
                own_redis.client(), tokens, kind="global", permissions=[Permission.alerts_publish]
            )
            own_redis.kill9()
            async with AlertSender(kafka_bootstrap, settings.topics.alerts) as sender:
                await sender.send(alert_body(id=late), token=second, key=late.encode())
            await _until_logged(logs, "auth_retry", deferred)
            async with asyncio.timeout(GUARD_S):  # drain bound is 2 x GUARD_S: not what ends it
                await router.stop()
            assert task.done(), "the run loop ended on its own, not by the drain timeout"
    finally:
        await router.stop()
        await task
        await validator.stop()
        await collector.stop()
    assert not any(r.key == late.encode() for r in collector.records[team_topic])
