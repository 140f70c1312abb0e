"""``alertyard serve tokens``: the HTTP API and its lifespan (invalidation listener, outbox
relay to the audit topic, expiry sweep) in one process; SIGTERM/SIGINT stop them all."""

from __future__ import annotations

import asyncio
import socket

from services.tokens.app import create_app, lifespan
from shared.logging import configure_logging, get_logger
from shared.serving import (
    exit_unless_secure,
    http_server,
    inherited_socket,
    run_until_stopped,
    stop_on_signals,
)
from shared.settings.tokens import TokensSettings, load

__all__ = ["run", "serve"]

log = get_logger(__name__)


def serve() -> None:
    """Run the token service until interrupted (settings from ``ALERTYARD_*``)."""
    settings = load()
    configure_logging(settings.log_level, settings.log_format)
    exit_unless_secure(settings)
    asyncio.run(run(settings))


async def run(
    settings: TokensSettings,
    *,
    stop: asyncio.Event | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve until ``stop`` is set (default: SIGTERM/SIGINT) or the server fails; on ``sock``
    when given (else the inherited ``http_fd``, else ``http_host``/``http_port``)."""
    stop = stop or stop_on_signals()
    async with lifespan(settings) as runtime:
        app = create_app(
            service=runtime.service,
            validator=runtime.validator,
            settings=settings,
            metrics=runtime.metrics,
        )
        server = http_server(app, host=settings.http_host, port=settings.http_port)
        sock = sock or inherited_socket(settings.http_fd)
        await run_until_stopped(server, stop, sock=sock, service="tokens")
    log.info("tokens_service_stopped")
