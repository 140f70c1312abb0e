"""Shared helpers for the router's integration tests: unique topics, a producer of alerts with
the bearer header, and a collector that reads the router's output topics from the start."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.router.decision_log import DecisionIndexer
from services.router.decisions import DecisionStore
from services.rules.engine.compiled import CompiledRuleset, compile_ruleset
from services.rules.engine.model import Ruleset
from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.settings import RouterSettings, TopicSettings
from tests._waiting import eventually

Record = Any  # aiokafka ships no type information (ConsumerRecord)


DBA_THEN_SRE = Ruleset.model_validate(
    {
        "rules": [
            {
                "name": "databases",
                "owner_team": "dba",
                "condition_groups": [
                    {"conditions": [{"field": "service", "operator": "equals", "value": "db"}]}
                ],
                "destinations": ["dba"],
            },
            {"name": "rest", "owner_team": "sre", "destinations": ["sre"], "fallback": True},
        ]
    }
)
"""Database alerts to dba, everything else to sre (the router process tests)."""


def router_settings(bootstrap: str, redis_url: str, **overrides: Any) -> RouterSettings:
    """Settings on unique topics and a unique group, so tests never see each other."""
    tag = uuid.uuid4().hex[:10]
    topics = TopicSettings(
        alerts=f"t-{tag}.alerts",
        team_prefix=f"t-{tag}.team.",
        unrouted=f"t-{tag}.unrouted",
        rejected=f"t-{tag}.rejected",
        audit=f"t-{tag}.audit",
        decisions=f"t-{tag}.decisions",
        partitions=3,
    )
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": bootstrap,
        "redis_url": redis_url,
        "group_id": f"router-{tag}",
        "topics": topics,
        "batch_timeout_ms": 20,
        "publish_retry_max_backoff_s": 0.5,
    }
    values.update(overrides)
    return RouterSettings.model_validate(values)


@contextlib.asynccontextmanager
async def decision_indexer(settings: RouterSettings, store: DecisionStore) -> AsyncIterator[None]:
    """The decision indexer ``serve router`` runs next to an in-process router (decisions go
    through the decisions topic by default); enter it after the router started."""
    if not settings.decisions_via_topic:
        yield
        return
    indexer = DecisionIndexer.for_router(settings, store)
    await indexer.start()
    task = asyncio.create_task(indexer.run(), name="decision-indexer")
    try:
        yield
    finally:
        indexer.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await indexer.close()


class StaticRuleset:
    """A compiled ruleset that never changes (the live store is tested where it matters)."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.current: CompiledRuleset = compile_ruleset(ruleset)
        self.loaded = True


def alert_body(**fields: Any) -> bytes:
    body = {"source": "test", "summary": "something broke", **fields}
    return json.dumps(body).encode()


class AlertSender:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self._producer: AIOKafkaProducer = make_producer(bootstrap)
        self._topic = topic

    async def __aenter__(self) -> AlertSender:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._producer.stop()

    async def send(
        self,
        value: bytes,
        *,
        token: str | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        if headers is None:
            headers = [("authorization", f"Bearer {token}".encode())] if token else []
        await self._producer.send_and_wait(self._topic, value=value, key=key, headers=headers)

    async def send_many(self, values: Iterable[tuple[bytes, bytes]], *, token: str) -> int:
        headers = [("authorization", f"Bearer {token}".encode())]
        futures = [
            await self._producer.send(self._topic, value=v, key=k, headers=headers)
            for k, v in values
        ]
        await asyncio.gather(*futures)
        return len(futures)


async def send_stream(
    bootstrap: str,
    topic: str,
    ids: list[str],
    *,
    token: str,
    chunk: int = 100,
    pause_s: float = 0.0,
) -> None:
    """Send one alert per id, ``chunk`` at a time (each chunk acknowledged), pausing
    ``pause_s`` between chunks so a drill's faults land mid-stream (pacing, not waiting)."""
    async with AlertSender(bootstrap, topic) as sender:
        for start in range(0, len(ids), chunk):
            part = ids[start : start + chunk]
            await sender.send_many(((i.encode(), alert_body(id=i)) for i in part), token=token)
            if pause_s:
                await asyncio.sleep(pause_s)


class Collector:
    """Reads topics from the beginning in the background; tests wait on what arrived."""

    def __init__(
        self, bootstrap: str, topics: Iterable[str], *, isolation_level: str = "read_committed"
    ) -> None:
        self._bootstrap = bootstrap
        self._isolation_level = isolation_level
        self.topics = sorted(set(topics))
        self.records: dict[str, list[Record]] = defaultdict(list)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        await ensure_topics(self._bootstrap, self.topics, partitions=3)
        self._consumer = make_consumer(
            self._bootstrap,
            *self.topics,
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level=self._isolation_level,
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for tp, records in batch.items():
                self.records[tp.topic].extend(records)
            if batch:
                self._changed.set()

    async def wait_for(self, done: Callable[[], bool], *, within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; got {self.counts()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.5))

    def counts(self) -> dict[str, int]:
        return {t: len(r) for t, r in self.records.items()}

    def by_key(self, topic: str, key: bytes) -> list[Record]:
        return [r for r in self.records.get(topic, []) if r.key == key]


async def seed_rules_and_token(redis: Any, tokens: Any, ruleset: Any) -> str:
    """Teams, the stored ruleset (through the real rules store) and a publish token."""
    from services.rules.control.store import RulesStore
    from services.tokens.service import TokenService
    from services.tokens.testing import issue_token
    from shared.auth import Permission

    service = TokenService(redis, tokens)
    for team in sorted(ruleset.teams()):
        await service.create_team(name=team, actor=None)
    await RulesStore(redis).apply(ruleset, principal=None)
    raw, _ = await issue_token(
        redis, tokens, kind="global", permissions=[Permission.alerts_publish]
    )
    return raw


def router_process_env(
    settings: RouterSettings, tokens: Any, *, port: int, **extra: str
) -> dict[str, str]:
    """The environment of an ``alertyard serve router`` process on ``settings``' topics."""
    topics = settings.topics
    return {
        **os.environ,
        "ALERTYARD_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ALERTYARD_REDIS_URL": settings.redis_url,
        "ALERTYARD_TOPIC_ALERTS": topics.alerts,
        "ALERTYARD_TOPIC_TEAM_PREFIX": topics.team_prefix,
        "ALERTYARD_TOPIC_UNROUTED": topics.unrouted,
        "ALERTYARD_TOPIC_REJECTED": topics.rejected,
        "ALERTYARD_TOPIC_AUDIT": topics.audit,
        "ALERTYARD_TOPIC_DECISIONS": topics.decisions,
        "ALERTYARD_TOPIC_PARTITIONS": str(topics.partitions),
        "ALERTYARD_TOPIC_REPLICATION_FACTOR": str(topics.replication_factor),
        "ALERTYARD_ROUTER_GROUP_ID": settings.group_id,
        "ALERTYARD_ROUTER_HTTP_PORT": str(port),
        "ALERTYARD_TOKENS_HMAC_SECRET": tokens.hmac_secret.get_secret_value(),
        "ALERTYARD_LOG_FORMAT": "json",
        **extra,
    }


class RouterProcesses:
    """``alertyard serve router`` processes on ``settings`` (one group), each logging to
    ``<log_dir>/<name>.log``; the drills drive routers only through this process interface."""

    def __init__(
        self, settings: RouterSettings, tokens: Any, log_dir: Path, **extra_env: str
    ) -> None:
        self._settings = settings
        self._tokens = tokens
        self._log_dir = log_dir
        self._extra = {"ALERTYARD_ROUTER_BATCH_MAX_RECORDS": "200", **extra_env}
        self.procs: list[subprocess.Popen[bytes]] = []

    async def start(self, name: str) -> subprocess.Popen[bytes]:
        from tests.integration._processes import free_port, start_service, wait_ready

        port = free_port()
        env = router_process_env(self._settings, self._tokens, port=port, **self._extra)
        proc = start_service("router", env, self._log_dir / f"{name}.log")
        self.procs.append(proc)
        await wait_ready(port, proc)
        return proc

    async def stop_all(self, *, within_s: float = 40.0) -> None:
        """SIGTERM (drain and commit) every router still running; SIGKILL past ``within_s``."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.to_thread(proc.wait, within_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def kill9(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL and reap: no drain, no commit, no flush."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


async def lookups_missing(redis: Any, ids: list[str], *, within: float) -> list[str]:
    """The ids whose decision is still not in Redis after waiting up to ``within`` seconds for
    the indexers to catch up (returns as soon as none is missing)."""
    store = DecisionStore(redis, retention_s=3600)
    missing = list(ids)

    async def caught_up() -> bool:
        nonlocal missing
        found = await store.get_many(missing)
        missing = [i for i, decision in zip(missing, found, strict=True) if decision is None]
        return not missing

    with contextlib.suppress(AssertionError):  # the caller counts what is still missing
        await eventually(caught_up, what="decision lookups", within=within, every=0.2)
    return missing
