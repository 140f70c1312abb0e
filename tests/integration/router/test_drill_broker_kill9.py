"""Drill (#14): three brokers (replication 3, min.insync.replicas 2), one killed -9 while
50,000 alerts are routed, later restarted: nothing lost, the router process (defaults:
decisions through the decisions topic) carries on unrestarted, every lookup is there.

The cluster is a second local stack of three brokers (scripts/stack up --brokers 3 in a
directory of its own, reusing the session's broker jars), never the shared one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.rules.engine.model import Ruleset
from services.tokens.testing import test_settings
from shared.kafka import ensure_topics
from tests._infra import ROOT
from tests.integration._processes import free_port, free_port_block
from tests.integration._throwaway_broker import stack_jars
from tests.integration.router._harness import (
    Collector,
    RouterProcesses,
    lookups_missing,
    router_settings,
    seed_rules_and_token,
    send_stream,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow, pytest.mark.drill]

RULESET = Ruleset.model_validate(
    {"rules": [{"name": "all", "owner_team": "ops", "destinations": ["ops"], "fallback": True}]}
)
SENT = 50_000
STACK = str(ROOT / "scripts" / "stack")


@dataclass
class Cluster:
    bootstrap: str
    state: Path
    env: dict[str, str]

    def kill9(self, broker: int) -> None:
        os.kill(int((self.state / f"kafka-{broker}" / "pid").read_text()), signal.SIGKILL)

    def up(self) -> None:
        """Start what is not running (a killed broker comes back on its data)."""
        subprocess.run([STACK, "up", "--brokers", "3"], env=self.env, check=True,
                       capture_output=True)  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    jars = stack_jars()
    if not (jars / ".complete").exists():
        subprocess.run([STACK, "up"], check=True, capture_output=True)  # fetches the jars once
    state = tmp_path_factory.mktemp("three-brokers")
    (state / "jars").symlink_to(jars)
    env = {
        **os.environ,
        "ALERTYARD_STACK_DIR": str(state),
        # Brokers on this port + 0, 2, 4, their controllers on + 1, 3, 5.
        "ALERTYARD_STACK_KAFKA_PORT": str(free_port_block(6)),
        "ALERTYARD_STACK_REDIS_PORT": str(free_port()),  # unused: the session's Redis serves
        "ALERTYARD_STACK_KAFKA_HEAP": "-Xms128m -Xmx512m",
    }
    done = subprocess.run([STACK, "up", "--brokers", "3"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    bootstrap = next(
        line.partition("=")[2]
        for line in done.stdout.splitlines()
        if line.startswith("export KAFKA_BOOTSTRAP_SERVERS=")
    )
    yield Cluster(bootstrap, state, env)
    subprocess.run([STACK, "down"], env=env, capture_output=True, check=False)


@pytest.mark.timeout(600)
async def test_broker_kill9_mid_stream_loses_nothing(
    cluster: Cluster, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    tokens = test_settings(redis_url)
    token = await seed_rules_and_token(redis, tokens, RULESET)
    settings = router_settings(cluster.bootstrap, redis_url)
    settings.topics.replication_factor = 3
    topics = settings.topics
    team = topics.team_topic("ops")
    await ensure_topics(
        cluster.bootstrap,
        [topics.alerts, team, topics.unrouted, topics.rejected, topics.decisions],
        partitions=topics.partitions,
        replication_factor=3,
    )
    routers = RouterProcesses(settings, tokens, tmp_path, ALERTYARD_ROUTER_BATCH_MAX_RECORDS="500")
    collector = Collector(cluster.bootstrap, [team])
    await collector.start()
    ids = [uuid.uuid4().hex for _ in range(SENT)]

    def delivered() -> int:
        return len(collector.records[team])

    try:
        router = await routers.start("a")
        producing = asyncio.create_task(
            send_stream(cluster.bootstrap, topics.alerts, ids, token=token, chunk=500)
        )
        await collector.wait_for(lambda: delivered() >= SENT // 5, within=240)
        cluster.kill9(2)  # mid-stream
        killed_at = delivered()
        await collector.wait_for(lambda: delivered() >= killed_at + SENT // 5, within=240)
        routed_on_two = delivered() - killed_at
        await asyncio.to_thread(cluster.up)  # the broker comes back
        await producing
        await collector.wait_for(lambda: len({r.key for r in collector.records[team]}) >= SENT,
                                 within=240)  # fmt: skip
        missing = await lookups_missing(redis, ids, within=120)
        restarted = router.poll() is not None  # one router process all along
    finally:
        await routers.stop_all()
        await collector.stop()

    keys = Counter(r.key.decode() for r in collector.records[team])
    lost = [i for i in ids if i not in keys]
    print(
        f"\nDRILL broker-kill9: sent={SENT} delivered={len(keys)}"
        f" duplicated={sum(n - 1 for n in keys.values())} lost={len(lost)}"
        f" routed_on_two_brokers={routed_on_two} lookups_missing={len(missing)}"
    )
    assert not lost
    assert not restarted, "the router carried on through the broker loss"
    assert routed_on_two >= SENT // 5, "the router carried on with two brokers"
    assert not missing
