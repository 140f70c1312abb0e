"""Running a service process: one HTTP server and the service's tasks, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from typing import Any

import uvicorn

from shared.errors import InsecureSettingsError
from shared.logging import get_logger
from shared.settings import TokensSettings

__all__ = ["exit_unless_secure", "http_server", "stop_on_signals"]


def exit_unless_secure(tokens: TokensSettings) -> None:
    """Stop the process (exit status 2, one JSON log line) when the settings are unsafe, e.g.
    the development HMAC secret without ``ALERTYARD_TOKENS_ALLOW_DEV_HMAC_SECRET``."""
    try:
        tokens.check_hmac_secret()
    except InsecureSettingsError as exc:
        get_logger("alertyard.startup").error("refusing_to_start", code=exc.code, detail=exc.detail)
        raise SystemExit(2) from None


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the process stops every task together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def http_server(app: Any, *, host: str, port: int) -> uvicorn.Server:
    """A uvicorn server for ``app`` that logs through structlog only (no access log) and leaves
    SIGTERM/SIGINT to :func:`stop_on_signals`."""
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
    )
    return _QuietServer(config)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT; call from inside the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
