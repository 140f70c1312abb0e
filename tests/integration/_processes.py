"""Running alertyard services as real subprocesses in tests (for kill -9 and restart tests)."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shared.serving import listen_socket

__all__ = ["ROOT", "free_port", "free_port_block", "listen_socket", "start_service", "wait_ready"]

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, but that another process may
    take before the caller binds it. Prefer :func:`listen_socket` and ``start_service(sock=)``;
    this remains for services that cannot take an inherited socket yet."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive ports on 127.0.0.1 that all bind right now, below the
    kernel's ephemeral range: a port derived from :func:`free_port` (+1, +2...) lies in that
    range, where any outgoing connection may hold it (a three-broker stack once failed to bind
    its controller port so)."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    start = random.randrange(10_000, low - 100 * count)
    for base in range(start, low - count, count):
        socks: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                socks.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports below {low}")


def start_service(
    name: str, env: dict[str, str], log: Path, *, sock: socket.socket | None = None
) -> subprocess.Popen[bytes]:
    """``alertyard serve <name>`` with ``env``, its output appended to ``log``.

    With ``sock`` (from :func:`listen_socket`, held by the test) the service serves HTTP on that
    socket (``ALERTYARD_HTTP_FD``), so a restarted service gets the same port back and no other
    process can take it in between."""
    fds: tuple[int, ...] = ()
    if sock is not None:
        env = {**env, "ALERTYARD_HTTP_FD": str(sock.fileno())}
        fds = (sock.fileno(),)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "serve", name],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=fds,
        )


async def wait_ready(port: int, proc: subprocess.Popen[bytes], within: float = 60.0) -> None:
    """Wait until ``/readyz`` answers 200; fail at once if the process exits."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"service exited with {proc.returncode}")
            try:
                if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"service on port {port} did not become ready within {within} s")
