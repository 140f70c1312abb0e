"""Running a service process: one HTTP server and the service's tasks, stopped together.

Where the server listens: ``http_host``/``http_port`` (port 0 picks a free one; the bound port
is logged as ``http_listening``), or a listening socket inherited from the parent process
(``ALERTYARD_HTTP_FD``), which is how tests and socket activation hand a service a port that
no other process can take in between.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from shared.errors import InsecureSettingsError
from shared.logging import get_logger
from shared.settings import TokensSettings

__all__ = [
    "bound_port",
    "exit_unless_secure",
    "http_server",
    "inherited_socket",
    "listen_socket",
    "run_until_stopped",
    "stop_on_signals",
]

log = get_logger(__name__)


def exit_unless_secure(tokens: TokensSettings) -> None:
    """Stop the process (exit status 2, one JSON log line) when the settings are unsafe, e.g.
    the development HMAC secret without ``ALERTYARD_TOKENS_ALLOW_DEV_HMAC_SECRET``."""
    try:
        tokens.check_hmac_secret()
    except InsecureSettingsError as exc:
        log.error("refusing_to_start", code=exc.code, detail=exc.detail)
        raise SystemExit(2) from None


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling (the process stops every task together) that
    says when it listens: :attr:`listening` is set and ``http_listening`` logged with the port."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            log.info("http_listening", port=bound_port(self))
            self.listening.set()


def http_server(app: Any, *, host: str, port: int) -> _QuietServer:
    """A uvicorn server for ``app`` that logs through structlog only (no access log) and leaves
    SIGTERM/SIGINT to :func:`stop_on_signals`."""
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off"
    )
    return _QuietServer(config)


def listen_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A bound, listening TCP socket (port 0: the kernel picks a free port and keeps it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def inherited_socket(fd: int | None) -> socket.socket | None:
    """The listening socket behind an inherited file descriptor, or None."""
    return None if fd is None else socket.socket(fileno=fd)


def bound_port(server: uvicorn.Server) -> int:
    """The port a started server listens on (useful with port 0)."""
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return port


async def run_until_stopped(
    server: uvicorn.Server, stop: asyncio.Event, *, sock: socket.socket | None = None, service: str
) -> None:
    """Serve HTTP until ``stop`` is set or the server ends on its own; then shut it down."""
    sockets = [sock] if sock is not None else None
    http = asyncio.create_task(server.serve(sockets=sockets), name=f"{service}-http")
    stopping = asyncio.create_task(stop.wait(), name="signal")
    try:
        await asyncio.wait({http, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        stopping.cancel()
    await http  # a server that failed (say, to bind) fails the service


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT; call from inside the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
