"""The validator against the real Redis: kinds, rejections, cache, invalidation, outages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from services.tokens.service import TokenService
from services.tokens.testing import issue_token
from shared.auth import TOKEN_RE, Permission, TokenKind
from shared.redis import make_redis
from shared.settings.tokens import TokensSettings
from shared.tokens import keys
from shared.tokens.errors import (
    AuthUnavailableError,
    TokenExpiredError,
    TokenMalformedError,
    TokenRevokedError,
    TokenUnknownError,
    UserDeactivatedError,
)
from shared.tokens.permissions import ROLE_PERMISSIONS, TEAM_TOKEN_PERMISSIONS, Role
from shared.tokens.token_format import TokenCodec
from shared.tokens.validator import RedisTokenValidator, build_validator
from tests._clock import ManualClock
from tests.integration.tokens._proxy import TcpProxy
from tests.integration.tokens.conftest import StartValidator

pytestmark = [pytest.mark.redis]


async def _eventually_rejected(
    validator: RedisTokenValidator, raw: str, timeout_s: float = 2.0
) -> None:
    """Await invalidation messages until ``raw`` is no longer served from the cache."""
    async with asyncio.timeout(timeout_s):  # a bound on a wait for an event, not a timing claim
        while validator.authenticate_cached(raw) is not None:
            await validator.next_invalidation()


async def test_each_kind_gets_its_principal(
    redis: Redis, settings: TokensSettings, start_validator: StartValidator
) -> None:
    validator = await start_validator()
    raw_g, _ = await issue_token(redis, settings, permissions=[Permission.alerts_publish])
    raw_t, _ = await issue_token(redis, settings, kind="team", team="payments")
    raw_u, _ = await issue_token(redis, settings, kind="user", role="member", teams=["search"])
    assert [raw[:4] for raw in (raw_g, raw_t, raw_u)] == ["ayg_", "ayt_", "ayu_"]
    assert all(TOKEN_RE.fullmatch(raw) for raw in (raw_g, raw_t, raw_u))

    g = await validator.authenticate(raw_g)
    assert (g.kind, g.permissions, g.is_admin) == (
        TokenKind.global_,
        frozenset({Permission.alerts_publish}),
        True,
    )
    t = await validator.authenticate(raw_t)
    assert (t.kind, t.team, t.is_admin) == (TokenKind.team, "payments", False)
    assert t.teams == frozenset({"payments"})
    assert t.permissions == TEAM_TOKEN_PERMISSIONS
    assert not t.may_manage_team("search")
    u = await validator.authenticate(raw_u)
    assert (u.kind, u.is_admin) == (TokenKind.user, False)
    assert u.teams == frozenset({"search"})
    assert u.permissions == ROLE_PERMISSIONS[Role.member]
    assert u.user_id is not None


async def test_cache_hit_needs_no_io_and_touches_last_used(
    redis: Redis, settings: TokensSettings, start_validator: StartValidator
) -> None:
    validator = await start_validator()
    raw, principal = await issue_token(redis, settings)
    assert validator.authenticate_cached(raw) is None
    assert await validator.authenticate(raw) == principal
    assert validator.authenticate_cached(raw) == principal
    await validator.flush()  # the last_used_at write runs off the request path
    assert await redis.get(keys.token_last_used_key(principal.token_id)) is not None


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda raw: raw[:-1], id="truncated"),
        pytest.param(lambda raw: raw + "A", id="extended"),
        pytest.param(lambda raw: raw[:10] + ("B" if raw[10] != "B" else "C") + raw[11:], id="typo"),
        pytest.param(lambda raw: "ayt_" + raw[4:], id="other-kind-prefix"),
        pytest.param(lambda raw: "ayx_" + raw[4:], id="unknown-prefix"),
        pytest.param(lambda raw: raw[:-2] + "é" + raw[-1], id="non-ascii"),
        pytest.param(lambda raw: "", id="empty"),
        pytest.param(lambda raw: "Bearer " + raw, id="with-scheme"),
    ],
)
async def test_malformed_tokens_die_before_redis(
    redis: Redis, settings: TokensSettings, mangle: object
) -> None:
    raw, _ = await issue_token(redis, settings)
    dead = make_redis("redis://127.0.0.1:1/0")  # nothing listens: any lookup would fail

    validator = build_validator(settings, dead)
    with pytest.raises(TokenMalformedError) as err:
        await validator.authenticate(mangle(raw))  # type: ignore[operator]  # parametrised
    assert err.value.code == "token_malformed"
    await dead.aclose()


async def test_forged_with_another_secret_is_malformed_and_unknown_is_unknown(
    settings: TokensSettings, start_validator: StartValidator
) -> None:
    validator = await start_validator()
    forged = TokenCodec(b"attacker-guess").generate(TokenKind.global_)
    with pytest.raises(TokenMalformedError):
        await validator.authenticate(forged)
    never_issued = TokenCodec(settings.hmac_secret.get_secret_value().encode()).generate(
        TokenKind.global_
    )
    with pytest.raises(TokenUnknownError) as err:
        await validator.authenticate(never_issued)
    assert err.value.code == "token_unknown"


async def test_expired_token_is_rejected(
    redis: Redis, settings: TokensSettings, start_validator: StartValidator
) -> None:
    validator = await start_validator()
    past = datetime.now(UTC) - timedelta(hours=1)
    service = TokenService(redis, settings, clock=lambda: past)  # issues it an hour ago
    created = await service.create_token(
        kind=TokenKind.global_,
        name="old",
        actor=None,
        permissions=[Permission.alerts_read],
        expires_in_s=60,
    )
    with pytest.raises(TokenExpiredError) as err:
        await validator.authenticate(created.raw)
    assert err.value.code == "token_expired"

    # The sweep marks it and emits token.expired once.
    assert await TokenService(redis, settings).expire_due_tokens() == 1
    assert await TokenService(redis, settings).expire_due_tokens() == 0
    with pytest.raises(TokenExpiredError):
        await validator.authenticate(created.raw)


async def test_revocation_reaches_every_validator(
    redis: Redis, settings: TokensSettings, start_validator: StartValidator
) -> None:
    first, second = await start_validator(), await start_validator(cache_ttl_s=3600)
    raw, principal = await issue_token(redis, settings)
    await first.authenticate(raw)
    await second.authenticate(raw)
    await TokenService(redis, settings).revoke_token(token_id=principal.token_id, actor=None)
    await _eventually_rejected(first, raw, timeout_s=1.0)
    await _eventually_rejected(second, raw, timeout_s=1.0)
    for validator in (first, second):
        with pytest.raises(TokenRevokedError) as err:
            await validator.authenticate(raw)
        assert err.value.code == "token_revoked"


async def test_rotation_with_and_without_grace(
    redis: Redis, settings: TokensSettings, start_validator: StartValidator
) -> None:
    validator = await start_validator(cache_ttl_s=3600)
    service = TokenService(redis, settings)
    old, principal = await issue_token(redis, settings, kind="team", team="payments")
    await validator.authenticate(old)

    graced = await service.rotate_token(token_id=principal.token_id, actor=None, grace_s=3600)
    assert graced.token.id == principal.token_id
    assert graced.raw != old
    assert graced.token.previous_secret_valid_until is not None
    assert (await validator.authenticate(graced.raw)).token_id == principal.token_id
    assert (await validator.authenticate(old)).token_id == principal.token_id  # within grace

    final = await service.rotate_token(token_id=principal.token_id, actor=None, grace_s=0)
    await _eventually_rejected(validator, old)
    await _eventually_rejected(validator, graced.raw)
    for rotated_out in (old, graced.raw):
        with pytest.raises(TokenRevokedError):
            await validator.authenticate(rotated_out)
    assert (await validator.authenticate(final.raw)).team == "payments"


async def test_user_tokens_follow_the_user(
    redis: Redis, settings: TokensSettings, start_validator: StartValidator
) -> None:
    validator = await start_validator(cache_ttl_s=3600)
    service = TokenService(redis, settings)
    raw, principal = await issue_token(redis, settings, kind="user", role="admin")
    assert principal.user_id is not None
    await validator.authenticate(raw)

    await service.set_role(user_id=principal.user_id, role=Role.viewer, actor=None)
    await _eventually_rejected(validator, raw)
    lowered = await validator.authenticate(raw)
    assert lowered.permissions == ROLE_PERMISSIONS[Role.viewer]
    assert not lowered.is_admin

    await service.deactivate_user(user_id=principal.user_id, actor=None)
    await _eventually_rejected(validator, raw)
    with pytest.raises(UserDeactivatedError) as err:
        await validator.authenticate(raw)
    assert err.value.code == "user_deactivated"


async def test_global_token_survives_its_creator(
    redis: Redis, settings: TokensSettings, start_validator: StartValidator
) -> None:
    validator = await start_validator()
    service = TokenService(redis, settings)
    admin_raw, admin = await issue_token(redis, settings, kind="user", role="admin")
    created = await service.create_token(
        kind=TokenKind.global_, name="ci", actor=admin, permissions=[Permission.alerts_publish]
    )
    assert admin.user_id is not None
    await service.deactivate_user(user_id=admin.user_id, actor=None)
    with pytest.raises(UserDeactivatedError):
        await validator.authenticate(admin_raw)
    assert (await validator.authenticate(created.raw)).has(Permission.alerts_publish)


async def test_redis_outage_fails_closed_with_bounded_grace_for_cached(
    redis: Redis, settings: TokensSettings, redis_url: str
) -> None:
    cached_raw, _ = await issue_token(redis, settings)
    uncached_raw, _ = await issue_token(redis, settings)
    host_port = redis_url.split("//", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    db = redis_url.rsplit("/", 1)[1]
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    client = make_redis(f"redis://127.0.0.1:{proxy.port}/{db}")

    clock = ManualClock()
    validator = build_validator(
        settings.model_copy(update={"cache_ttl_s": 5.0, "redis_down_grace_s": 30.0}),
        client,
        clock=clock,
    )
    try:
        await validator.authenticate(cached_raw)
        await proxy.cut()
        clock.advance(6)  # past the cache TTL: a Redis check is due but Redis is gone
        assert validator.authenticate_cached(cached_raw) is None  # stale: not a silent hit
        assert (await validator.authenticate(cached_raw)).kind is TokenKind.global_  # grace
        with pytest.raises(AuthUnavailableError) as err:
            await validator.authenticate(uncached_raw)
        assert (err.value.code, err.value.retriable, err.value.http_status) == (
            "auth_unavailable",
            True,
            503,
        )
        clock.advance(28)  # 34 s after Redis confirmed it: still inside TTL + grace
        assert (await validator.authenticate(cached_raw)).kind is TokenKind.global_
        clock.advance(2)  # 36 s: past TTL + grace, fail closed for everyone
        with pytest.raises(AuthUnavailableError):
            await validator.authenticate(cached_raw)
    finally:
        await validator.stop()
        await client.aclose()
        await proxy.cut()


async def test_full_cache_evicts_the_least_recently_used_only(
    redis: Redis, settings: TokensSettings, start_validator: StartValidator
) -> None:
    validator = await start_validator(cache_max_entries=2)
    first, _ = await issue_token(redis, settings)
    second, _ = await issue_token(redis, settings)
    third, _ = await issue_token(redis, settings)
    await validator.authenticate(first)
    await validator.authenticate(second)
    assert validator.authenticate_cached(first) is not None  # first is now the most recent
    await validator.authenticate(third)
    assert validator.authenticate_cached(second) is None  # evicted: least recently used
    assert validator.authenticate_cached(first) is not None  # the rest stay (no clear-all)
    assert validator.authenticate_cached(third) is not None


async def test_cache_ttl_follows_the_injected_clock(redis: Redis, settings: TokensSettings) -> None:
    clock = ManualClock()
    validator = build_validator(settings, redis, clock=clock)
    raw, principal = await issue_token(redis, settings)
    await validator.authenticate(raw)
    clock.advance(settings.cache_ttl_s - 0.001)
    assert validator.authenticate_cached(raw) == principal
    clock.advance(0.002)
    assert validator.authenticate_cached(raw) is None  # stale: the next check asks Redis
    assert await validator.authenticate(raw) == principal
    assert validator.authenticate_cached(raw) == principal
    await validator.stop()
