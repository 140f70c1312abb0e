"""A client generated from the published OpenAPI documents works against the running
services (#15): token create/list/revoke, rules apply/explain, typed errors.

The generator (openapi-python-client, pinned) runs in its own uv tool environment, as does the
generated code (``_client_smoke.py``); both live in a temp dir, never in the repository.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Final

import httpx
import pytest

from tests.integration.contract._services import Services

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

GENERATOR: Final = "openapi-python-client==0.29.1"
"""Pinned; ``scripts/bootstrap`` fetches it so ``make test`` has it on a fresh machine."""
DATEUTIL: Final = "python-dateutil==2.9.0.post0"
"""The generated code's one dependency the generator's environment lacks."""


def _uv() -> str:
    found = shutil.which("uv")
    assert found, "uv is missing: scripts/bootstrap installs it"
    return found


def _generate(spec: Path, out: Path) -> None:
    done = subprocess.run(
        [
            *(_uv(), "tool", "run", "--from", GENERATOR, "openapi-python-client", "generate"),
            *("--path", str(spec), "--output-path", str(out), "--meta", "none"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Endpoint will not be generated" not in done.stdout, done.stdout


@pytest.mark.timeout(300)
async def test_generated_client_drives_tokens_and_rules(services: Services, tmp_path: Path) -> None:
    async with httpx.AsyncClient() as http:
        for name in ("tokens", "router"):
            document = await http.get(f"{services.urls[name]}/openapi.json")
            (tmp_path / f"{name}.json").write_bytes(document.content)
    for name in ("tokens", "router"):
        await asyncio.to_thread(_generate, tmp_path / f"{name}.json", tmp_path / f"{name}_client")
    smoke = Path(__file__).with_name("_client_smoke.py")
    command = [
        *(_uv(), "tool", "run", "--from", GENERATOR, "--with", DATEUTIL, "python", str(smoke)),
        *(str(tmp_path), services.urls["tokens"], services.urls["router"]),
        *(services.tokens["member"], services.team),
    ]
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout
