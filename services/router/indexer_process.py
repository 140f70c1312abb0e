"""The router's decision indexer in a child process (``ALERTYARD_ROUTER_DECISION_INDEXER=process``).

Indexing (consume, build the decision bodies, write to Redis) took ~16% of the router's event
loop, its bottleneck; in a child it runs on another core. The child ends with the router: its
stdin is a pipe the router holds (EOF when the router exits or is killed -9) and on Linux it
asks for SIGTERM when the router dies. If the child dies, the router logs
``decision_indexer_exited`` and starts a new one after a backoff (routing goes on; lookups
lag until the new child caught up, nothing is lost: offsets are committed after Redis
answered); ``/readyz`` reports ``decision_indexer: false`` and
``alertyard_router_decision_indexer_restarts`` counts the restarts meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.router.indexer import PARENT_FLAG
from shared.logging import get_logger
from shared.settings import RouterSettings

__all__ = ["IndexerProcess", "indexer_env"]

log = get_logger(__name__)

_BACKOFF_INITIAL_S: Final = 0.5
_BACKOFF_MAX_S: Final = 10.0
_STOP_WITHIN_S: Final = 10.0
_HEALTHY_AFTER_S: Final = 60.0
"""A child that ran this long died of something new: the backoff starts over."""


def indexer_env(settings: RouterSettings) -> dict[str, str]:
    """The child's environment: the router's, with the settings the indexer reads taken from
    ``settings`` (a router built in-process may not have them in its environment)."""
    return {
        **os.environ,
        "ALERTYARD_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "ALERTYARD_REDIS_URL": settings.redis_url,
        "ALERTYARD_LOG_LEVEL": settings.log_level,
        "ALERTYARD_LOG_FORMAT": settings.log_format,
        "ALERTYARD_TOPIC_DECISIONS": settings.topics.decisions,
        "ALERTYARD_TOPIC_PARTITIONS": str(settings.topics.partitions),
        "ALERTYARD_TOPIC_REPLICATION_FACTOR": str(settings.topics.replication_factor),
        "ALERTYARD_ROUTER_GROUP_ID": settings.group_id,
        "ALERTYARD_ROUTER_DECISION_RETENTION_S": str(settings.decision_retention_s),
    }


class IndexerProcess:
    """Starts, watches and restarts the indexer child; :meth:`stop` ends it."""

    def __init__(self, settings: RouterSettings, registry: CollectorRegistry) -> None:
        self._env = indexer_env(settings)
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._started_at = 0.0
        self.restarts = Counter(
            "alertyard_router_decision_indexer_restarts",
            "Decision indexer child processes started again after one died",
            registry=registry,
        )
        self.up = Gauge(
            "alertyard_router_decision_indexer_up",
            "1 while the decision indexer child process runs",
            registry=registry,
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    async def start(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.router.indexer",
            PARENT_FLAG,
            stdin=subprocess.PIPE,  # its EOF tells the child the router is gone
            env=self._env,  # stdout and stderr are the router's: the same JSON log stream
        )
        self._started_at = time.monotonic()
        self.up.set(1)
        log.info("decision_indexer_spawned", pid=self._proc.pid)

    async def supervise(self) -> None:
        """Restart the child whenever it exits, until :meth:`stop`; a restart that fails
        (say, no free memory) ends this task with the error, which stops the router."""
        backoff = _BACKOFF_INITIAL_S
        while not self._stopping.is_set():
            proc = self._proc
            assert proc is not None  # start() ran
            code = await proc.wait()
            self.up.set(0)
            if self._stopping.is_set():
                return
            if time.monotonic() - self._started_at > _HEALTHY_AFTER_S:
                backoff = _BACKOFF_INITIAL_S
            log.error(
                "decision_indexer_exited", pid=proc.pid, returncode=code, restart_in_s=backoff
            )
            with contextlib.suppress(TimeoutError):  # woken early by stop()
                await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
            if self._stopping.is_set():
                return
            backoff = min(backoff * 2, _BACKOFF_MAX_S)
            await self.start()
            self.restarts.inc()

    async def stop(self) -> None:
        """Close its stdin (it stops after the write in hand); SIGKILL if it lingers."""
        self._stopping.set()
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), timeout=_STOP_WITHIN_S)
        except TimeoutError:
            log.warning("decision_indexer_killed", pid=proc.pid)
            proc.kill()
            await proc.wait()
        self.up.set(0)
