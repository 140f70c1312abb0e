"""The decision indexer child of ``alertyard serve router``: it never outlives its router, and a
dead child is restarted (lookups keep catching up, ``/readyz`` and ``/metrics`` tell)."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from services.tokens.testing import test_settings
from tests._waiting import eventually
from tests.integration.router._harness import (
    DBA_THEN_SRE,
    AlertSender,
    RouterProcesses,
    alert_body,
    kill9,
    lookups_missing,
    router_settings,
    seed_rules_and_token,
)

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux ``/proc``)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in found if _alive(c)]


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(") ")[2].split()[0] not in {"Z", "X"}


def _indexer_of(router_pid: int) -> int:
    children = _children(router_pid)
    assert len(children) == 1, children
    cmdline = Path(f"/proc/{children[0]}/cmdline").read_bytes().split(b"\0")
    assert b"services.router.indexer" in cmdline, cmdline
    return children[0]


async def _send(bootstrap: str, topic: str, token: str, count: int) -> list[str]:
    ids = [uuid.uuid4().hex for _ in range(count)]
    async with AlertSender(bootstrap, topic) as sender:
        await sender.send_many(((i.encode(), alert_body(id=i)) for i in ids), token=token)
    return ids


async def test_the_indexer_child_ends_when_its_router_is_killed_9(
    kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    tokens = test_settings(redis_url)
    token = await seed_rules_and_token(redis, tokens, DBA_THEN_SRE)
    settings = router_settings(kafka_bootstrap, redis_url)
    routers = RouterProcesses(settings, tokens, tmp_path)
    try:
        router = await routers.start("router")  # returns once /readyz answered 200
        # Ready means the child is indexing, not merely spawned (its start-up takes seconds).
        assert '"event": "decision_indexer_started"' in (tmp_path / "router.log").read_text()
        child = _indexer_of(router.pid)
        ids = await _send(kafka_bootstrap, settings.topics.alerts, token, 200)
        assert await lookups_missing(redis, ids, within=30) == []  # the child indexes
        kill9(router)

        async def child_gone() -> bool:
            return not _alive(child)

        await eventually(child_gone, what="the orphaned indexer to exit", within=15, every=0.1)
    finally:
        await routers.stop_all()
        if _alive(child):
            os.kill(child, signal.SIGKILL)


async def test_a_killed_indexer_child_is_restarted_and_lookups_catch_up(
    kafka_bootstrap: str, redis_url: str, redis: Redis, tmp_path: Path
) -> None:
    tokens = test_settings(redis_url)
    token = await seed_rules_and_token(redis, tokens, DBA_THEN_SRE)
    settings = router_settings(kafka_bootstrap, redis_url)
    routers = RouterProcesses(settings, tokens, tmp_path)
    try:
        router = await routers.start("router")
        port = _http_port(tmp_path / "router.log")
        first = _indexer_of(router.pid)
        os.kill(first, signal.SIGKILL)
        ids = await _send(kafka_bootstrap, settings.topics.alerts, token, 300)

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:

            async def restarted() -> bool:
                metrics = (await http.get("/metrics")).text
                return "alertyard_router_decision_indexer_restarts_total 1.0" in metrics

            await eventually(restarted, what="an indexer restart", within=30, every=0.1)
            second = _indexer_of(router.pid)
            assert second != first
            assert await lookups_missing(redis, ids, within=30) == []

            async def ready_again() -> bool:
                ready = await http.get("/readyz")
                return ready.status_code == 200 and ready.json()["checks"]["decision_indexer"]

            await eventually(ready_again, what="/readyz with the new child", within=30, every=0.1)
        log = (tmp_path / "router.log").read_text()
        assert '"event": "decision_indexer_exited"' in log
        assert '"event": "decision_indexer_started"' in log  # the child logs JSON there too
    finally:
        await routers.stop_all()
    assert router.returncode == 0


def _http_port(log: Path) -> int:
    import json

    for line in log.read_text().splitlines():
        if '"router_started"' in line:
            return int(json.loads(line)["http"].rpartition(":")[2])
    raise AssertionError("router_started not logged")
