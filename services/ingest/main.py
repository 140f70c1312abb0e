"""``alertyard serve ingest``: the ingest HTTP service; SIGTERM/SIGINT stop it after the
requests in flight are answered."""

from __future__ import annotations

import asyncio

from services.ingest.app import create_app
from shared.logging import configure_logging, get_logger
from shared.runtime import tune_gc
from shared.serving import exit_unless_secure, http_server, inherited_socket, stop_on_signals
from shared.settings import IngestSettings, TokensSettings

__all__ = ["run_ingest", "serve"]

log = get_logger(__name__)


def serve() -> None:
    """Run the ingest service until SIGTERM/SIGINT (settings from ``ALERTYARD_*``)."""
    settings = IngestSettings()
    configure_logging(settings.log_level, settings.log_format)
    exit_unless_secure(TokensSettings())  # its validator checks tokens with the same secret
    asyncio.run(run_ingest(settings))


async def run_ingest(settings: IngestSettings) -> None:
    stop = stop_on_signals()
    app = create_app(settings)
    server = http_server(app, host=settings.http_host, port=settings.http_port)
    inherited = inherited_socket(settings.http_fd)  # tests hand over a bound socket
    sockets = [inherited] if inherited is not None else None
    async with app.router.lifespan_context(app):
        tune_gc()  # start-up is done: see shared/runtime.py
        serving = asyncio.create_task(server.serve(sockets=sockets), name="http")
        stopping = asyncio.create_task(stop.wait(), name="signal")
        log.info(
            "ingest_started",
            alerts_topic=settings.topics.alerts,
            http=f"{settings.http_host}:{settings.http_port}",
        )
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            log.info("ingest_stopping")
            server.should_exit = True  # uvicorn answers the requests in flight first
            await asyncio.gather(serving, return_exceptions=True)
            stopping.cancel()
    log.info("ingest_stopped")
