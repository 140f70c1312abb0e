"""The router's decision indexer in a child process (``ALERTYARD_ROUTER_DECISION_INDEXER=process``).

Indexing (consume, build the decision bodies, write to Redis) took ~16% of the router's event
loop, its bottleneck; in a child it runs on another core. The child ends with the router: its
stdin is a pipe the router holds (EOF when the router exits or is killed -9) and on Linux it
asks for SIGTERM when the router dies. If the child dies, the router logs
``decision_indexer_exited`` and starts a new one after a backoff (routing goes on; lookups
lag until the new child caught up, nothing is lost: offsets are committed after Redis
answered); ``/readyz`` reports ``decision_indexer: false`` and
``alertyard_router_decision_indexer_restarts`` counts the restarts meanwhile.

A child counts as up once it says so on a pipe of its own (:data:`READY_FD_ENV`), after its
consumer and Redis client started: its imports and start-up take 2-4 s of CPU, and a router
that answered ``/readyz`` with the child still starting said "ready" while no decision was
being indexed.
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

from services.router.indexer import PARENT_FLAG, READY_FD_ENV
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
        "ALERTYARD_ROUTER_DECISION_INDEX_LINGER_MS": str(settings.decision_index_linger_ms),
    }


class IndexerProcess:
    """Starts, watches and restarts the indexer child; :meth:`stop` ends it."""

    def __init__(self, settings: RouterSettings, registry: CollectorRegistry) -> None:
        self._env = indexer_env(settings)
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._started_at = 0.0
        self._ready_fd: int | None = None
        self.started = False
        """The running child said it is indexing (reset when it exits)."""
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
    def ready(self) -> bool:
        """Running and started: what ``/readyz`` reports as ``decision_indexer``."""
        return self.running and self.started

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    async def start(self) -> None:
        self._close_ready_pipe()
        self.started = False
        ready_read, ready_write = os.pipe()
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "services.router.indexer",
                PARENT_FLAG,
                stdin=subprocess.PIPE,  # its EOF tells the child the router is gone
                env={**self._env, READY_FD_ENV: str(ready_write)},
                pass_fds=(ready_write,),
                # stdout and stderr are the router's: the same JSON log stream
            )
        except BaseException:
            os.close(ready_read)
            raise
        finally:
            os.close(ready_write)  # the child holds its own copy
        self._ready_fd = ready_read
        asyncio.get_running_loop().add_reader(ready_read, self._on_ready_pipe)
        self._started_at = time.monotonic()
        self.up.set(1)
        log.info("decision_indexer_spawned", pid=self._proc.pid)

    def _on_ready_pipe(self) -> None:
        """The child wrote its ready line, or closed the pipe (it exited): either way the
        pipe has nothing more to say."""
        fd = self._ready_fd
        if fd is None:
            return
        try:
            said = os.read(fd, 64)
        except OSError:
            said = b""
        if said.startswith(b"ready"):
            self.started = True
        self._close_ready_pipe()

    def _close_ready_pipe(self) -> None:
        fd, self._ready_fd = self._ready_fd, None
        if fd is not None:
            asyncio.get_running_loop().remove_reader(fd)
            os.close(fd)

    async def supervise(self) -> None:
        """Restart the child whenever it exits, until :meth:`stop`; a restart that fails
        (say, no free memory) ends this task with the error, which stops the router."""
        backoff = _BACKOFF_INITIAL_S
        while not self._stopping.is_set():
            proc = self._proc
            assert proc is not None  # start() ran
            code = await proc.wait()
            self.up.set(0)
            self.started = False
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
        self.started = False
        self._close_ready_pipe()
