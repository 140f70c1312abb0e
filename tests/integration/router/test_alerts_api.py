"""``/v1/alerts`` on real Redis: lookups, team isolation, filters and cursor pagination."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from services.router.api import build_alerts_api
from services.router.decisions import DecisionRecord, DecisionStore
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.http import install_error_handlers
from shared.tokens.validator import build_validator
from tests.integration._decisions import decision_for

pytestmark = pytest.mark.redis

BASE = datetime(2030, 1, 1, tzinfo=UTC)


def decision(n: int, team: str | None, *, status: str = "firing") -> DecisionRecord:
    at = BASE + timedelta(seconds=n // 3)  # several decisions share a millisecond
    return decision_for(f"a{n:03d}", team, at, status=status, offset=n).to_record()


@pytest.fixture
async def client(
    redis: Redis, redis_url: str
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    settings = test_settings(redis_url)
    store = DecisionStore(redis, retention_s=10 * 365 * 24 * 3600)
    await store.write_many(
        [
            decision(n, "dba" if n % 2 else "sre", status="resolved" if n % 5 == 0 else "firing")
            for n in range(120)
        ]
        + [decision(n, None) for n in range(120, 130)]
    )
    validator = build_validator(settings, redis)
    app = FastAPI()
    app.state.validator = validator
    app.state.decision_store = store
    install_error_handlers(app)
    app.include_router(build_alerts_api())
    admin, _ = await issue_token(
        redis, settings, kind="global", permissions=[Permission.alerts_read]
    )
    dba, _ = await issue_token(redis, settings, kind="team", team="dba")
    writer, _ = await issue_token(
        redis, settings, kind="global", permissions=[Permission.alerts_publish]
    )
    tokens = {"admin": admin, "dba": dba, "writer": writer}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://router") as http:
        yield http, tokens
    await validator.stop()


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_get_by_id_and_team_isolation(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, tokens = client
    got = await http.get("/v1/alerts/a001", headers=auth(tokens["admin"]))
    assert got.status_code == 200
    assert got.json()["teams"] == ["dba"]
    assert got.json()["published"][0]["offset"] == 1
    assert (await http.get("/v1/alerts/a001", headers=auth(tokens["dba"]))).status_code == 200
    # a team token does not see (or learn of) other teams' alerts
    hidden = await http.get("/v1/alerts/a002", headers=auth(tokens["dba"]))
    assert hidden.status_code == 404
    assert (await http.get("/v1/alerts/nope", headers=auth(tokens["admin"]))).status_code == 404
    assert (await http.get("/v1/alerts/a001")).status_code == 401
    forbidden = await http.get("/v1/alerts/a001", headers=auth(tokens["writer"]))
    assert forbidden.status_code == 403
    other_team = await http.get("/v1/alerts", params={"team": "sre"}, headers=auth(tokens["dba"]))
    assert other_team.status_code == 403


async def test_cursor_pagination_visits_each_alert_once_newest_first(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, tokens = client
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 50}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/v1/alerts", params=params, headers=auth(tokens["admin"]))).json()
        assert len(page["items"]) <= 50
        seen.extend(item["alert_id"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 130
    assert pages == 3
    assert seen[0] == "a129"  # newest first
    too_many = await http.get("/v1/alerts", params={"limit": 51}, headers=auth(tokens["admin"]))
    assert too_many.status_code == 422
    bad_cursor = await http.get(
        "/v1/alerts", params={"cursor": "garbage"}, headers=auth(tokens["admin"])
    )
    assert bad_cursor.status_code == 422


async def test_team_token_lists_its_team_with_filters(
    client: tuple[httpx.AsyncClient, dict[str, str]],
) -> None:
    http, tokens = client
    everything: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"status": "resolved", "limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await http.get("/v1/alerts", params=params, headers=auth(tokens["dba"]))).json()
        everything.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    ids = sorted(str(item["alert_id"]) for item in everything)
    assert ids == [f"a{n:03d}" for n in range(120) if n % 2 and n % 5 == 0]
    since = (BASE + timedelta(seconds=30)).isoformat()
    recent = (
        await http.get(
            "/v1/alerts", params={"team": "dba", "since": since}, headers=auth(tokens["admin"])
        )
    ).json()
    assert recent["items"]
    assert all(item["received_at"] >= since.replace("+00:00", "Z") for item in recent["items"])
    unrouted = (
        await http.get("/v1/alerts", params={"outcome": "unrouted"}, headers=auth(tokens["admin"]))
    ).json()
    assert {item["alert_id"] for item in unrouted["items"]} == {f"a{n}" for n in range(120, 130)}
