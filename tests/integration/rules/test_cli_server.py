"""The CLI against a real HTTP server: apply with diff, list, get, explain, test, delete."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis
from typer.testing import CliRunner

from services.cli.main import app as cli
from services.rules.control.api import build_rules_api
from services.rules.control.store import RulesStore
from services.rules.engine.model import parse_ruleset
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.http import install_error_handlers
from shared.redis import make_redis
from shared.tokens.validator import build_validator
from tests.integration._processes import listen_socket
from tests.integration.rules._fixtures import add_teams

pytestmark = pytest.mark.redis

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
runner = CliRunner()


def _serve(redis_url: str, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    """The rules API in a thread, on ``sock``: it listens already, so requests made before the
    app is up wait in the socket's backlog instead of failing (no start-up polling)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_redis(redis_url)  # bound to the server thread's own event loop
        app.state.rules_store = RulesStore(client)
        app.state.validator = build_validator(test_settings(redis_url), client)
        yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(build_rules_api())
    server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    return server, thread


@pytest.fixture
def server_url(redis_url: str) -> Iterator[str]:
    sock = listen_socket()
    server, thread = _serve(redis_url, sock)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)


async def test_cli_round_trip(
    redis: Redis, redis_url: str, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_teams(redis)
    token, _ = await issue_token(redis, test_settings(redis_url), kind="global")
    monkeypatch.setenv("ALERTYARD_ROUTER_URL", server_url)
    monkeypatch.setenv("ALERTYARD_TOKEN", token)
    rules = str(EXAMPLES / "rules.yaml")

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["rules", *args])
        return result.exit_code, result.output

    # CliRunner blocks; run it off the event loop the fixtures' Redis client lives on.
    code, out = await asyncio.to_thread(run, "apply", "-f", rules, "--dry-run")
    assert code == 0, out
    assert "+ payments-critical" in out
    assert "dry run" in out
    code, out = await asyncio.to_thread(run, "apply", rules, "--yes", "--json")
    assert code == 0, out
    assert json.loads(out)["version"] == 1
    assert token not in out

    code, out = await asyncio.to_thread(run, "list", "--json")
    assert json.loads(out)["rules"][0]["name"] == "security-auth-watch"
    code, out = await asyncio.to_thread(run, "get", "payments-critical", "--json")
    assert json.loads(out)["rule"]["owner_team"] == "payments"

    cases = str(EXAMPLES / "rules-tests.yaml")
    code, out = await asyncio.to_thread(run, "test", "-f", cases)
    assert code == 0, out
    code, out = await asyncio.to_thread(
        run, "explain", "--alert", '{"service": "checkout", "labels": {"env": "prod"}}', "--json"
    )
    assert json.loads(out)["teams"] == ["payments"]

    code, out = await asyncio.to_thread(run, "delete", "payments-critical", "--yes", "--json")
    assert code == 0, out
    assert json.loads(out)["version"] == 2
    code, out = await asyncio.to_thread(run, "test", "-f", cases)
    assert code == 1  # the payments cases now fail
    code, out = await asyncio.to_thread(run, "get", "nope")
    assert code == 1
    assert "no rule with id or name 'nope'" in out


async def test_cli_assigns_sources_and_explains_with_one(
    redis: Redis, redis_url: str, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_teams(redis)
    settings = test_settings(redis_url)
    admin, _ = await issue_token(redis, settings, kind="global")
    _, bridge = await issue_token(
        redis, settings, kind="global", permissions=[Permission.alerts_publish]
    )
    monkeypatch.setenv("ALERTYARD_ROUTER_URL", server_url)
    monkeypatch.setenv("ALERTYARD_TOKEN", admin)
    await RulesStore(redis).apply(
        parse_ruleset(
            {
                "rules": [
                    {
                        "name": "payments-own",
                        "owner_team": "payments",
                        "scope": "team",
                        "destinations": ["payments"],
                    }
                ]
            }
        ),
        principal=None,
    )

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["rules", *args])
        return result.exit_code, result.output

    alert = '{"service": "checkout"}'
    code, out = await asyncio.to_thread(run, "explain", alert, "--source-token", bridge.token_id)
    assert code == 0, out
    assert "out of scope payments-own" in out
    assert "none: unrouted" in out
    code, out = await asyncio.to_thread(run, "sources", "assign", bridge.token_id, "payments")
    assert code == 0, out
    assert f"@ source {bridge.token_id}: - -> payments" in out
    code, out = await asyncio.to_thread(run, "sources", "list", "--json")
    assert json.loads(out)["sources"] == {bridge.token_id: ["payments"]}
    code, out = await asyncio.to_thread(
        run, "explain", alert, "--source-token", bridge.token_id, "--json"
    )
    assert json.loads(out)["teams"] == ["payments"]
    code, out = await asyncio.to_thread(run, "sources", "remove", bridge.token_id)
    assert code == 0, out
    code, out = await asyncio.to_thread(run, "sources", "list")
    assert "no sources assigned" in out
