"""A real Prometheus Alertmanager (built by ``scripts/stack alertmanager``) as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.integration._processes import ROOT, free_port


def alertmanager_binary() -> Path:
    """The binary, built once into ``.stack/`` (go build from the Go module proxy)."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "stack"), "alertmanager"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/stack alertmanager failed:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


def webhook_config(url: str, token_file: Path, **route: Any) -> dict[str, Any]:
    """The configuration docs/ingest.md shows, with short timers for tests."""
    return {
        "route": {
            "receiver": "alertyard",
            "group_by": ["alertname", "service"],
            "group_wait": "0s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            **route,
        },
        "receivers": [
            {
                "name": "alertyard",
                "webhook_configs": [
                    {
                        "url": url,
                        "send_resolved": True,
                        "max_alerts": 1000,
                        "http_config": {
                            "authorization": {
                                "type": "Bearer",
                                "credentials_file": str(token_file),
                            }
                        },
                    }
                ],
            }
        ],
    }


@contextlib.contextmanager
def running_alertmanager(workdir: Path, config: dict[str, Any]) -> Iterator[str]:
    """Alertmanager on a free port (clustering off); yields its base URL."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_file = workdir / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (workdir / "alertmanager.log").open("ab")
    proc = subprocess.Popen(
        [
            str(alertmanager_binary()),
            f"--config.file={config_file}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=debug",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def wait_ready(url: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}/-/ready")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise AssertionError(f"Alertmanager at {url} not ready within {within} s")


async def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    """Alerts as Prometheus posts them (``POST /api/v2/alerts``)."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(f"{url}/api/v2/alerts", json=alerts)
    assert answer.status_code == 200, answer.text


@contextlib.asynccontextmanager
async def alertmanager(workdir: Path, config: dict[str, Any]) -> AsyncIterator[str]:
    with running_alertmanager(workdir, config) as url:
        await wait_ready(url)
        yield url
