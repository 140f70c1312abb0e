"""Every process's in-memory ruleset follows the stored version and survives Redis outages."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.rules.control.live import LiveRuleset, RulesNotLoadedError
from services.rules.control.store import RulesStore, encode_ruleset
from services.rules.engine.model import parse_rule
from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.outbox import OutboxRelay
from shared.redis import make_redis
from tests.integration.rules._fixtures import add_teams, simple_rule, two_team_ruleset
from tests.unit.rules._build import alert

pytestmark = pytest.mark.redis


async def _until(live: LiveRuleset, predicate: Callable[[], bool], within_s: float = 10) -> None:
    """Await the live ruleset's swaps and failures until ``predicate`` holds (the timeout only
    bounds a wait for an event; nothing is claimed about how long it took)."""
    async with asyncio.timeout(within_s):
        while not predicate():
            await live.next_change()


async def test_swaps_on_notice_and_on_periodic_check(redis: Redis) -> None:
    await add_teams(redis)
    store = RulesStore(redis)
    await store.apply(two_team_ruleset(), principal=None)
    # No periodic check within the test: only the pub/sub notice can cause the swap.
    live = LiveRuleset(RulesStore(make_redis(_url(redis))), check_interval_s=3600.0)
    await live.start()
    try:
        assert live.loaded
        assert live.current.version == 1
        assert live.current.evaluate(alert(service="billing")).teams == ("payments",)

        # The pub/sub notice swaps it (the periodic check is an hour away).
        await store.create_rule(
            parse_rule(simple_rule("security-auth", "security", "auth")), principal=None
        )
        await _until(live, lambda: live.current.version == 2)
        assert live.current.evaluate(alert(service="auth")).teams == ("security",)
    finally:
        await live.stop()

    # Without a notice (written behind the store's back) the periodic check still finds it.
    poller = LiveRuleset(RulesStore(make_redis(_url(redis))), check_interval_s=0.1)
    await poller.start()
    try:
        bumped = (await store.get_ruleset()).model_copy(update={"version": 7})
        await redis.set(store.keys.current, encode_ruleset(bumped))
        await redis.set(store.keys.version, 7)
        await _until(poller, lambda: poller.current.version == 7)
    finally:
        await poller.stop()


def _url(redis: Redis) -> str:
    kwargs = redis.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"


class _Proxy:
    """A TCP forwarder to Redis that the test can cut, to simulate an outage."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def test_redis_outage_keeps_last_ruleset(redis: Redis) -> None:
    await add_teams(redis)
    await RulesStore(redis).apply(two_team_ruleset(), principal=None)
    kwargs = redis.connection_pool.connection_kwargs
    proxy = _Proxy(kwargs["host"], kwargs["port"])
    await proxy.start()
    client = make_redis(f"redis://127.0.0.1:{proxy.port}/{kwargs.get('db', 0)}")
    live = LiveRuleset(RulesStore(client), check_interval_s=0.05)
    await live.start()
    failures = _metric("alertyard_rules_reload_failures_total")
    try:
        assert live.current.version == 1
        await proxy.cut()
        await _until(live, lambda: _metric("alertyard_rules_reload_failures_total") > failures)
        assert _metric("alertyard_rules_stale") == 1.0
        # Still routing with version 1, never an empty ruleset.
        assert live.loaded
        assert live.current.version == 1
        assert live.current.evaluate(alert(service="billing")).teams == ("payments",)
    finally:
        await live.stop()
        await client.aclose()


async def test_not_loaded_when_redis_is_down_from_the_start() -> None:
    client = make_redis("redis://127.0.0.1:1/0")
    live = LiveRuleset(RulesStore(client), check_interval_s=0.05)
    await live.start(wait_s=0.3)
    try:
        assert not live.loaded
        with pytest.raises(RulesNotLoadedError):
            _ = live.current
    finally:
        await live.stop()
        await client.aclose()


@pytest.mark.kafka
async def test_change_events_reach_kafka(
    redis: Redis, kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    await add_teams(redis)
    store = RulesStore(redis)
    await store.apply(two_team_ruleset(), principal=None)
    await store.delete_rule("search-index", principal=None)
    topic = unique("audit-rules")
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        relay = OutboxRelay(redis, producer, source="rules", topic=topic)
        while await relay.relay_once():
            pass
    finally:
        await producer.stop()
    consumer = make_consumer(kafka_bootstrap, topic, group_id=unique("g"))
    await consumer.start()
    try:
        events: list[dict[str, Any]] = []
        while len(events) < 2:
            batch = await consumer.getmany(timeout_ms=10_000)
            assert batch, "rule events did not arrive"
            events.extend(json.loads(r.value) for rs in batch.values() for r in rs)
    finally:
        await consumer.stop()
    assert [(e["type"], e["sequence"]) for e in events] == [
        ("ruleset.applied", 1),
        ("rule.deleted", 2),
    ]
    assert events[1]["data"]["before"]["name"] == "search-index"
    assert events[1]["actor"]["kind"] == "system"
