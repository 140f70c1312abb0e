"""Console sessions against the real Redis and the real token validator: the record holds
no usable token, expires on the injected clock, and ends the moment its token or user does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI
from redis.asyncio import Redis

from services.console.app import create_app
from services.console.backend import Backend
from services.console.sessions import SESSION_KEY_PREFIX, SessionStore
from services.console.viewer import SESSION_COOKIE
from services.tokens.service import TokenService
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.settings import ConsoleSettings
from shared.tokens.validator import build_validator

pytestmark = [pytest.mark.redis]


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_the_record_holds_no_token_and_expires(redis: Redis) -> None:
    clock = Clock()
    store = SessionStore(redis, key=Fernet.generate_key(), ttl_s=600, clock=clock)
    session = await store.open(token="ayu_" + "s" * 50, token_id="tok_1")
    raw = await redis.get(SESSION_KEY_PREFIX + session.id)
    assert raw is not None
    assert b"ayu_" not in raw
    assert session.id.encode() not in raw
    loaded = await store.load(session.id)
    assert loaded is not None
    assert loaded.token == "ayu_" + "s" * 50
    assert loaded.token_id == "tok_1"

    clock.now += 601
    assert await store.load(session.id) is None
    assert await redis.get(SESSION_KEY_PREFIX + session.id) is None


async def test_a_record_sealed_with_another_key_is_no_session(redis: Redis) -> None:
    first = SessionStore(redis, key=Fernet.generate_key(), ttl_s=600)
    session = await first.open(token="ayu_" + "s" * 50, token_id="tok_1")
    restarted = SessionStore(redis, key=Fernet.generate_key(), ttl_s=600)
    assert await restarted.load(session.id) is None


async def test_a_secret_kept_once_is_shown_once(redis: Redis) -> None:
    store = SessionStore(redis, key=Fernet.generate_key(), ttl_s=600)
    session = await store.open(token="ayu_" + "s" * 50, token_id="tok_1")
    await store.keep_once(session.id, "ayt_" + "n" * 50)
    assert b"ayt_" not in (await redis.get(SESSION_KEY_PREFIX + session.id) or b"")
    assert await store.pop_once(session.id) == "ayt_" + "n" * 50
    assert await store.pop_once(session.id) is None


@pytest.fixture
async def console(redis: Redis, redis_url: str) -> AsyncIterator[FastAPI]:
    tokens = test_settings(redis_url)
    settings = ConsoleSettings(redis_url=redis_url)
    app = create_app(
        settings=settings,
        redis=redis,
        validator=build_validator(tokens, redis),
        backend=Backend(settings),
    )
    async with app.router.lifespan_context(app):
        yield app


async def test_deactivating_the_user_ends_the_session_at_once(
    console: FastAPI, redis: Redis, redis_url: str
) -> None:
    settings = test_settings(redis_url)
    raw, principal = await issue_token(
        redis, settings, kind="user", role="member", teams=["payments"]
    )
    sessions: SessionStore = console.state.sessions
    session = await sessions.open(token=raw, token_id=principal.token_id)
    transport = httpx.ASGITransport(app=console)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        http.cookies.set(SESSION_COOKIE, session.id)
        signed_in = await http.get("/settings")  # needs a session, calls no API
        assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/settings/tokens")

        assert principal.user_id is not None
        await TokenService(redis, settings).deactivate_user(user_id=principal.user_id, actor=None)

        ended = await http.get("/settings")
        assert ended.status_code == 303
        assert ended.headers["location"] == "/signin?ended=user_deactivated"
        assert await sessions.load(session.id) is None
        page = await http.get(ended.headers["location"])
        assert "your user was deactivated" in page.text


async def test_a_session_whose_token_id_changed_ends(
    console: FastAPI, redis: Redis, redis_url: str
) -> None:
    raw, _ = await issue_token(redis, test_settings(redis_url), kind="team", team="payments")
    sessions: SessionStore = console.state.sessions
    session = await sessions.open(token=raw, token_id="tok_someone_else")
    transport = httpx.ASGITransport(app=console)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        http.cookies.set(SESSION_COOKIE, session.id)
        ended = await http.get("/settings")
    assert ended.headers["location"] == "/signin?ended=token_changed"


async def test_a_token_the_console_cannot_use_gets_a_page_saying_so(
    console: FastAPI, redis: Redis, redis_url: str
) -> None:
    raw, principal = await issue_token(
        redis, test_settings(redis_url), kind="global", permissions=[Permission.alerts_publish]
    )
    session = await console.state.sessions.open(token=raw, token_id=principal.token_id)
    transport = httpx.ASGITransport(app=console)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        http.cookies.set(SESSION_COOKIE, session.id)
        page = await http.get("/")
    assert page.status_code == 403
    assert "holds no permission the console uses" in page.text
    assert raw not in page.text
