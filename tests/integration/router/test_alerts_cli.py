"""``alertyard alerts get|list`` against a served router API: the CLI reads its models."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis
from typer.testing import CliRunner

from services.cli.main import app as cli
from services.router.api import build_alerts_api
from services.router.decisions import DecisionStore
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.http import install_error_handlers
from shared.redis import make_redis
from shared.serving import listen_socket
from shared.tokens.validator import build_validator
from tests.integration.router.test_alerts_api import decision

pytestmark = pytest.mark.redis

runner = CliRunner()


@pytest.fixture
def router_url(redis_url: str) -> Iterator[str]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = make_redis(redis_url)  # bound to the server thread's own event loop
        app.state.decision_store = DecisionStore(client, retention_s=10 * 365 * 24 * 3600)
        app.state.validator = build_validator(test_settings(redis_url), client)
        yield
        await client.aclose()

    app = FastAPI(lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(build_alerts_api())
    sock = listen_socket()  # listening now: early requests wait in its backlog
    server = uvicorn.Server(uvicorn.Config(app, log_level="error"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)


async def test_get_and_list(
    redis: Redis, redis_url: str, router_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await DecisionStore(redis, retention_s=10 * 365 * 24 * 3600).write_many(
        [decision(n, "dba") for n in range(3)]
    )
    reader, _ = await issue_token(
        redis, test_settings(redis_url), kind="global", permissions=[Permission.alerts_read]
    )
    monkeypatch.setenv("ALERTYARD_ROUTER_URL", router_url)
    monkeypatch.setenv("ALERTYARD_TOKEN", reader)

    def run(*args: str) -> tuple[int, str]:
        result = runner.invoke(cli, ["alerts", *args])
        return result.exit_code, result.output

    code, out = await asyncio.to_thread(run, "get", "a001", "--json")
    assert code == 0, out
    assert json.loads(out)["teams"] == ["dba"]
    code, out = await asyncio.to_thread(run, "get", "a001")
    assert code == 0, out
    assert "tok-producer" in out
    code, out = await asyncio.to_thread(run, "list", "--json", "--limit", "2")
    assert code == 0, out
    page = json.loads(out)
    assert [item["alert_id"] for item in page["items"]] == ["a002", "a001"]
    assert page["next_cursor"]
    code, out = await asyncio.to_thread(run, "list", "--limit", "2")
    assert code == 0, out
    # Piped (no terminal): a row a line and the cursor whole, ready for grep and pasting.
    rows = [line.split() for line in out.splitlines() if "a00" in line]
    assert [(row[2], row[5]) for row in rows] == [("a002", "dba"), ("a001", "dba")]
    assert f"next page: --cursor {page['next_cursor']}\n" in out
    code, out = await asyncio.to_thread(run, "list", "--since", "1h")  # decisions are in 2030
    assert code == 0, out
    assert "a000" in out
    code, out = await asyncio.to_thread(run, "list", "--since", "soon")
    assert code != 0
    assert "duration" in out
    assert reader not in out
