"""``alertyard serve audit``: the audit-topic consumer and the audit HTTP API in one process.

SIGTERM/SIGINT stop both: the batch in hand is finished and committed, then the unsigned tail
is checkpointed and the log closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faststream.kafka import KafkaBroker

from services.audit.app import build_app
from services.audit.consumer import AuditConsumer
from services.audit.log import AuditLog
from services.audit.quarantine import Quarantine
from services.audit.signing import load_or_create_signing_key
from services.audit.subscriber import build_audit_router
from shared.http_auth import FailedAuthLimiter
from shared.kafka import ensure_topics, wait_for_kafka
from shared.logging import configure_logging, get_logger
from shared.redis import make_redis
from shared.runtime import tune_gc
from shared.serving import exit_unless_secure, http_server, inherited_socket, stop_on_signals
from shared.settings import AuditSettings, TokensSettings
from shared.tokens.validator import build_validator

__all__ = ["run_audit", "serve"]

log = get_logger(__name__)


def serve() -> None:
    """Run the audit service until SIGTERM/SIGINT (settings from ``ALERTYARD_*``)."""
    settings = AuditSettings()
    configure_logging(settings.log_level, settings.log_format)
    exit_unless_secure(TokensSettings())  # its validator checks tokens with the same secret
    asyncio.run(run_audit(settings))


async def run_audit(settings: AuditSettings) -> None:
    stop = stop_on_signals()

    configured = settings.signing_key.get_secret_value() if settings.signing_key else None
    key = load_or_create_signing_key(settings.log_dir, configured)
    audit_log = await asyncio.to_thread(
        AuditLog.open,
        settings.log_dir,
        signing_key=key,
        segment_max_bytes=settings.segment_max_bytes,
        checkpoint_every_records=settings.checkpoint_every_records,
        checkpoint_every_s=settings.checkpoint_every_s,
    )
    try:
        await _run(settings, audit_log, stop)
    finally:
        await asyncio.to_thread(audit_log.close)
        log.info("audit_stopped", head_seq=audit_log.head_seq)


async def _run(settings: AuditSettings, audit_log: AuditLog, stop: asyncio.Event) -> None:
    topic = settings.topics.audit
    await wait_for_kafka(settings.kafka_bootstrap_servers)
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        [topic],
        partitions=settings.topics.partitions,
        replication_factor=settings.topics.replication_factor,
    )
    redis = make_redis(settings.redis_url)
    validator = build_validator(
        TokensSettings(
            kafka_bootstrap_servers=settings.kafka_bootstrap_servers, redis_url=settings.redis_url
        ),
        redis,
    )
    consumer = AuditConsumer(audit_log, await asyncio.to_thread(Quarantine, settings.log_dir))
    subscription = build_audit_router(
        consumer,
        topic=topic,
        group_id=settings.group_id,
        max_records=settings.batch_max_records,
        poll_timeout_ms=settings.poll_timeout_ms,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )
    # Per-batch "Received"/"Processed" lines at debug: the consumer writes one line per batch.
    # A plain stdlib logger: FastStream's default one has its own non-propagating text handler,
    # which would bypass the JSON + redaction chain (shared/logging.py).
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        logger=logging.getLogger("faststream.audit"),
        log_level=logging.DEBUG,
    )
    broker.include_router(subscription.router)
    app = build_app(
        validator=validator,
        log_dir=settings.log_dir,
        public_key=audit_log.public_key,
        gaps=audit_log.gaps,
        readiness_checks=lambda: {"partitions_assigned": subscription.assigned},
        auth_limiter=FailedAuthLimiter.from_settings(settings),
    )
    server = http_server(app, host=settings.http_host, port=settings.http_port)
    inherited = inherited_socket(settings.http_fd)  # tests hand over a bound socket
    consumer.announce()
    await broker.start()
    await validator.start()
    tune_gc()  # start-up is done: see shared/runtime.py for why
    tasks = {
        asyncio.create_task(
            server.serve(sockets=[inherited] if inherited is not None else None), name="http"
        ),
        asyncio.create_task(stop.wait(), name="signal"),
        asyncio.create_task(consumer.failed.wait(), name="write-failed"),
        asyncio.create_task(
            _tick(consumer, settings.poll_timeout_ms / 1000), name="checkpoint-tick"
        ),
    }
    log.info(
        "audit_started",
        topic=topic,
        group_id=settings.group_id,
        log_dir=str(settings.log_dir),
        head_seq=audit_log.head_seq,
        http=f"{settings.http_host}:{settings.http_port}",
    )
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("audit_task_failed", task=task.get_name(), error=repr(task.exception()))
    finally:
        log.info("audit_stopping")
        server.should_exit = True
        # Let the batch in hand finish and commit before the consumer goes (never cancel an
        # append half-way through its thread); batches polled after this come again next start.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(consumer.drain()), timeout=30)
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.stop()
        await validator.stop()
        await redis.aclose()
    if consumer.error is not None:
        raise consumer.error  # a failed append (disk full, I/O error): exit non-zero to recover


async def _tick(consumer: AuditConsumer, every_s: float) -> None:
    """Time-based checkpoints while no batch arrives (a batch checks them itself)."""
    while True:
        await asyncio.sleep(every_s)  # a period, not a synchronisation
        await consumer.tick()
