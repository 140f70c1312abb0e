"""Redis dies and comes back while alerts flow: routing goes on with the cached ruleset and
token, nothing is lost, and the buffered decisions reach Redis once it is back.

Uses a throwaway redis-server of its own (never the shared one) with an append-only file, so
the restart keeps the stored tokens and rules as a real restart would.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

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
from tests.integration._processes import free_port
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


class ThrowawayRedis:
    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is needed for this test"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--dir", str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ping = subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True, check=False
            )
            if ping.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise AssertionError("throwaway redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL: an outage, not a polite shutdown
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(free_port(), tmp_path)
    server.start()
    yield server
    server.kill()


async def test_redis_restart_during_routing_loses_nothing(
    kafka_bootstrap: str, own_redis: ThrowawayRedis
) -> None:
    redis = make_redis(own_redis.url)
    tokens = test_settings(own_redis.url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    unused, _ = await issue_token(
        redis, tokens, kind="global", permissions=[Permission.alerts_publish]
    )
    settings = router_settings(kafka_bootstrap, own_redis.url)
    validator = build_validator(tokens, redis)
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
            own_redis.kill()
            await send_wave(sender)  # Redis down: cached ruleset and token keep routing
            assert live.loaded
            assert writer.buffered >= 100  # lookups wait for Redis; routing did not
            # A token never seen before cannot be checked now: the alert waits, it is not
            # rejected, and goes through once Redis is back.
            late = uuid.uuid4().hex
            ids.append(late)
            await sender.send(alert_body(id=late, service="web"), token=unused, key=late.encode())
            await asyncio.sleep(1.0)
            assert late not in received()
            own_redis.start()
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
