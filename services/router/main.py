"""``alertyard serve router`` (or ``python -m services.router.main``): the librdkafka consumer
loop, the HTTP API, the token-cache listener, the live ruleset and the rules outbox relay, in one
process, and the decision indexer in a child process (or inline, by
``ALERTYARD_ROUTER_DECISION_INDEXER``); SIGTERM/SIGINT drain and stop them all."""

from __future__ import annotations

import asyncio
import os
import socket

from prometheus_client import REGISTRY

from services.keyspace_migration import migrate_at_start
from services.router.app import build_app
from services.router.decision_log import DecisionIndexer
from services.router.decisions import DecisionStore, DecisionWriter
from services.router.engine import AlertRouter
from services.router.indexer_process import IndexerProcess
from services.router.metrics import RouterMetrics
from services.rules.control.live import LiveRuleset
from services.rules.control.store import RulesStore
from shared.http_auth import FailedAuthLimiter
from shared.kafka import wait_for_kafka
from shared.logging import configure_logging, get_logger
from shared.outbox import OutboxMetrics, OutboxRelay, make_relay_producer
from shared.redis import make_redis
from shared.runtime import tune_gc
from shared.serving import exit_unless_secure, http_server, inherited_socket, stop_on_signals
from shared.settings import RouterSettings, TokensSettings
from shared.tokens.validator import build_validator

__all__ = ["serve"]

log = get_logger(__name__)


def serve() -> None:
    """Run the router until SIGTERM/SIGINT (settings from ``ALERTYARD_*``)."""
    settings = RouterSettings()
    configure_logging(settings.log_level, settings.log_format)
    exit_unless_secure(TokensSettings())
    asyncio.run(run_router(settings))


async def run_router(settings: RouterSettings) -> None:
    stop = stop_on_signals()

    await wait_for_kafka(settings.kafka_bootstrap_servers)
    redis = make_redis(settings.redis_url)
    tokens_settings = TokensSettings(
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers, redis_url=settings.redis_url
    )
    metrics = RouterMetrics(REGISTRY)  # the process registry: rules gauges live there too
    validator = build_validator(tokens_settings, redis, metrics=metrics)
    rules_store = RulesStore(redis)
    live = LiveRuleset(rules_store)
    decision_store = DecisionStore(redis, retention_s=settings.decision_retention_s)
    await migrate_at_start(redis, decision_store)  # a Redis written before the cluster-safe keys
    writer = DecisionWriter(decision_store, max_buffered=settings.decision_buffer_max)
    router = AlertRouter(
        settings, validator=validator, ruleset=live, decisions=writer, metrics=metrics
    )
    relay_producer = make_relay_producer(
        settings.kafka_bootstrap_servers, request_timeout_s=settings.outbox_request_timeout_s
    )
    relay = OutboxRelay(
        redis,
        relay_producer,
        source="rules",
        topic=settings.topics.audit,
        owner=f"router-{socket.gethostname()}-{os.getpid()}",
        request_timeout_s=settings.outbox_request_timeout_s,
        metrics=OutboxMetrics(REGISTRY),
    )
    child = None
    if settings.decisions_via_topic and settings.decision_indexer == "process":
        child = IndexerProcess(settings, metrics.registry)
    app = build_app(
        validator=validator,
        rules_store=rules_store,
        ruleset=live,
        decision_store=decision_store,
        metrics=metrics,
        partitions_assigned=lambda: bool(router.assigned),
        auth_limiter=FailedAuthLimiter.from_settings(settings),
        decision_indexer_ready=(lambda: child.ready) if child is not None else None,
    )
    server = http_server(app, host=settings.http_host, port=settings.http_port)
    inherited = inherited_socket(settings.http_fd)  # tests hand over a bound socket
    http_sockets = [inherited] if inherited is not None else None

    await validator.start()
    await live.start()
    await relay_producer.start()
    await router.start()
    indexer = None  # every router indexes its share of the decisions topic
    if child is not None:
        await child.start()  # after router.start(): the decisions topic exists
    elif settings.decisions_via_topic:
        indexer = DecisionIndexer.for_router(settings, decision_store)
        await indexer.start()
    tune_gc()  # after start-up: see shared/runtime.py
    tasks = {
        asyncio.create_task(router.run(), name="router"),
        asyncio.create_task(relay.run(), name="rules-outbox-relay"),
        asyncio.create_task(server.serve(sockets=http_sockets), name="http"),
        asyncio.create_task(stop.wait(), name="signal"),
    }
    if indexer is not None:
        tasks.add(asyncio.create_task(indexer.run(), name="decision-indexer"))
    if child is not None:
        tasks.add(asyncio.create_task(child.supervise(), name="decision-indexer-process"))
    log.info(
        "router_started",
        alerts_topic=settings.topics.alerts,
        group_id=settings.group_id,
        group_protocol=settings.group_protocol,
        exactly_once=settings.exactly_once,
        decision_indexer=settings.decision_indexer if settings.decisions_via_topic else None,
        http=f"{settings.http_host}:{settings.http_port}",
    )
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("router_task_failed", task=task.get_name(), error=repr(task.exception()))
    finally:
        log.info("router_stopping")
        server.should_exit = True
        relay.stop()
        if indexer is not None:
            indexer.stop()
        await router.stop()  # drains the batch in hand, commits, closes the clients
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await relay_producer.stop()
        if indexer is not None:
            await indexer.close()
        if child is not None:  # after the router's drain: it indexes what that published
            await child.stop()
        await live.stop()
        await validator.stop()
        await redis.aclose()
        log.info("router_stopped")


if __name__ == "__main__":
    serve()
