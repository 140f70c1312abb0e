"""The CLI end to end: ``admin bootstrap`` on Redis, then commands against the real service."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
from redis.asyncio import Redis
from typer.testing import CliRunner

from services.cli.main import app
from services.cli.tokens import parse_duration  # the CLI wrapper of shared.durations
from services.tokens.main import run
from services.tokens.testing import test_settings
from shared.serving import listen_socket

pytestmark = [pytest.mark.redis, pytest.mark.kafka]


def test_parse_duration() -> None:
    assert [parse_duration(t) for t in ("90", "45s", "15m", "1h", "30d", "2w")] == [
        90,
        45,
        900,
        3600,
        2_592_000,
        1_209_600,
    ]


async def test_cli_session(
    redis: Redis, redis_url: str, kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    sock = listen_socket()  # bound now and held: no other process can take the port
    port = sock.getsockname()[1]
    settings = test_settings(redis_url, http_port=port, kafka_bootstrap_servers=kafka_bootstrap)
    settings.topics.audit = unique("audit")
    env = {
        "ALERTYARD_REDIS_URL": redis_url,
        "ALERTYARD_TOKENS_HMAC_SECRET": settings.hmac_secret.get_secret_value(),
        "ALERTYARD_TOKENS_URL": f"http://127.0.0.1:{port}",
    }
    runner = CliRunner()

    async def cli(*args: str, token: str | None = None) -> dict[str, object] | list[object]:
        extra = {"ALERTYARD_TOKEN": token} if token else {}
        result = await asyncio.to_thread(
            runner.invoke, app, [*args, "--json"], env={**env, **extra}
        )
        assert result.exit_code == 0, result.output
        parsed: dict[str, object] | list[object] = json.loads(result.stdout)
        return parsed

    boot = await cli("admin", "bootstrap", "--email", "owner@example.test")
    assert isinstance(boot, dict)
    owner = str(boot["secret"])
    again = await asyncio.to_thread(
        runner.invoke, app, ["admin", "bootstrap", "--email", "x@example.test"], env=env
    )
    assert again.exit_code != 0

    stop = asyncio.Event()
    server = asyncio.create_task(run(settings, stop=stop, sock=sock))
    try:
        # The socket already listens: this request waits in its backlog until the app serves.
        async with httpx.AsyncClient(timeout=60) as http:
            assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200
        assert await cli("teams", "create", "payments", token=owner) == {"name": "payments"}
        user = await cli(
            "users",
            "create",
            "dev@example.test",
            "--role",
            "member",
            "--team",
            "payments",
            token=owner,
        )
        assert isinstance(user, dict)
        team_tok = await cli(
            "tokens",
            "create",
            "--kind",
            "team",
            "--name",
            "ci",
            "--team",
            "payments",
            "--expires-in",
            "30d",
            token=owner,
        )
        assert isinstance(team_tok, dict)
        token_id = team_tok["token"]["id"]  # type: ignore[index]  # JSON body
        listed = await cli("tokens", "list", token=owner)
        assert token_id in {t["id"] for t in listed}  # type: ignore[index]  # JSON body
        rotated = await cli("tokens", "rotate", str(token_id), "--grace", "1h", token=owner)
        assert isinstance(rotated, dict)
        assert rotated["secret"] != team_tok["secret"]
        shown = await cli("tokens", "show", str(token_id), token=owner)
        assert isinstance(shown, dict)
        assert shown["previous_secret_valid_until"] is not None
        revoked = await cli("tokens", "revoke", str(token_id), token=owner)
        assert isinstance(revoked, dict)
        assert revoked["status"] == "revoked"
        demoted = await cli("users", "set-role", str(user["id"]), "viewer", token=owner)
        assert isinstance(demoted, dict)
        assert demoted["role"] == "viewer"
        deactivated = await cli("users", "deactivate", str(user["id"]), token=owner)
        assert isinstance(deactivated, dict)
        assert deactivated["active"] is False
    finally:
        stop.set()
        await server
