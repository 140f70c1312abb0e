"""``alertyard serve console``: the console's pages until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from services.console.app import create_app
from services.console.backend import Backend
from shared.logging import configure_logging, get_logger
from shared.redis import make_redis
from shared.serving import exit_unless_secure, http_server, stop_on_signals
from shared.settings import ConsoleSettings, TokensSettings
from shared.tokens.validator import build_validator

__all__ = ["serve"]

log = get_logger(__name__)


def serve() -> None:
    """Run the console (settings from ``ALERTYARD_*``)."""
    settings = ConsoleSettings()
    configure_logging(settings.log_level, settings.log_format)
    exit_unless_secure(TokensSettings())  # its validator checks tokens with the same secret
    asyncio.run(run_console(settings))


async def run_console(settings: ConsoleSettings) -> None:
    stop = stop_on_signals()
    redis = make_redis(settings.redis_url)
    tokens_settings = TokensSettings(
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers, redis_url=settings.redis_url
    )
    validator = build_validator(tokens_settings, redis)
    app = create_app(settings=settings, redis=redis, validator=validator, backend=Backend(settings))
    server = http_server(app, host=settings.http_host, port=settings.http_port)
    async with app.router.lifespan_context(app):
        serving = asyncio.create_task(server.serve(), name="http")
        stopping = asyncio.create_task(stop.wait(), name="signal")
        log.info("console_started", http=f"http://{settings.http_host}:{settings.http_port}")
        try:
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            server.should_exit = True
            await asyncio.gather(serving, return_exceptions=True)
            stopping.cancel()
    await redis.aclose()
    log.info("console_stopped")
