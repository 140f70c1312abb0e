"""``python -m services.router.indexer``: the decision indexer on its own (decisions topic ->
Redis), with the router's settings (``ALERTYARD_*``: topic, group ``<group>-decisions``, Redis,
retention). SIGTERM/SIGINT stop it after the write in hand.

``serve router`` starts it as a child with ``--with-parent`` (services/router/indexer_process.py):
then it also ends when its stdin (a pipe held by the router) reaches end of file, and on Linux
when the router dies (``PR_SET_PDEATHSIG``), so it never outlives a router killed with -9.
Deployments that run indexers separately start it without the flag, as many as they like: they
share the topic's partitions with the routers' own indexers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys

from services.router.decision_log import DecisionIndexer
from services.router.decisions import DecisionStore
from shared.kafka import ensure_topics, wait_for_kafka
from shared.logging import configure_logging, get_logger
from shared.redis import make_redis
from shared.runtime import tune_gc
from shared.serving import stop_on_signals
from shared.settings import RouterSettings

__all__ = ["PARENT_FLAG", "READY_FD_ENV", "main", "run_indexer"]

# Named, not __name__: run with -m the module is "__main__", which says nothing in a log line.
log = get_logger("services.router.indexer")

PARENT_FLAG = "--with-parent"
READY_FD_ENV = "ALERTYARD_INDEXER_READY_FD"
"""A pipe the parent router reads: ``ready`` once indexing started (services/router/
indexer_process.py)."""
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    settings = RouterSettings()
    configure_logging(settings.log_level, settings.log_format)
    asyncio.run(run_indexer(settings, with_parent=PARENT_FLAG in args))


async def run_indexer(settings: RouterSettings, *, with_parent: bool = False) -> None:
    """Index until a signal (or, ``with_parent``, until the parent is gone)."""
    stop = stop_on_signals()
    if with_parent:
        _follow_parent(stop)
    await wait_for_kafka(settings.kafka_bootstrap_servers)
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [settings.topics.decisions],
        partitions=settings.topics.partitions,
        replication_factor=settings.topics.replication_factor,
    )
    redis = make_redis(settings.redis_url)
    indexer = DecisionIndexer.for_router(
        settings, DecisionStore(redis, retention_s=settings.decision_retention_s)
    )
    await indexer.start()
    tune_gc()
    log.info(
        "decision_indexer_started",
        topic=settings.topics.decisions,
        group_id=f"{settings.group_id}-decisions",
        pid=os.getpid(),
        with_parent=with_parent,
    )
    _tell_parent_ready()
    run = asyncio.create_task(indexer.run(), name="decision-indexer")
    stopping = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if run.done() and run.exception() is not None:
            log.error("decision_indexer_failed", error=repr(run.exception()))
    finally:
        indexer.stop()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(run), timeout=5.0)  # the write in hand
        run.cancel()
        stopping.cancel()
        await asyncio.gather(run, stopping, return_exceptions=True)
        await indexer.close()
        await redis.aclose()
        log.info("decision_indexer_stopped", indexed=indexer.indexed)
    if run.done() and not run.cancelled() and run.exception() is not None:
        sys.exit(1)  # the router notices and restarts it


def _tell_parent_ready() -> None:
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:  # started on its own, not by a router
        return
    with contextlib.suppress(OSError, ValueError):  # a gone parent is noticed on stdin
        os.write(int(fd), b"ready\n")
        os.close(int(fd))


def _follow_parent(stop: asyncio.Event) -> None:
    """Stop when the parent goes: its pipe on stdin reaches EOF (any OS), and SIGTERM from the
    kernel when it dies (Linux). A Ctrl-C reaches the whole process group: the router stops
    this child itself once it drained, so SIGINT is left to it."""
    parent = os.getppid()
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    loop = asyncio.get_running_loop()
    loop.remove_signal_handler(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() != parent or parent == 1:  # died before the prctl took hold
        stop.set()
    loop.add_reader(sys.stdin.fileno(), _on_stdin, stop)


def _on_stdin(stop: asyncio.Event) -> None:
    try:
        data = os.read(sys.stdin.fileno(), 4096)
    except OSError:
        data = b""
    if not data:  # EOF: the router closed the pipe or is gone
        asyncio.get_running_loop().remove_reader(sys.stdin.fileno())
        stop.set()


if __name__ == "__main__":
    main()
