"""Helpers for tests (ours and other services'): real tokens issued by the real service.

::

    settings = test_settings(redis_url)
    raw, principal = await issue_token(redis, settings, kind="team", team="payments")
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from pydantic import SecretStr
from redis.asyncio import Redis

from services.tokens.service import TokenService
from shared.auth import Permission, Principal, TokenKind
from shared.settings.tokens import TokensSettings
from shared.teams import TEAMS_KEY
from shared.tokens import keys
from shared.tokens.permissions import ALL_PERMISSIONS, Role
from shared.tokens.validator import build_validator

__all__ = ["issue_token", "test_settings"]


def test_settings(redis_url: str, **overrides: object) -> TokensSettings:
    """Settings for tests: the given Redis, a test HMAC secret, defaults otherwise."""
    values: dict[str, object] = {
        "redis_url": redis_url,
        "hmac_secret": SecretStr("test-only-hmac-secret-0123456789abcdef"),
    }
    values.update(overrides)
    return TokensSettings.model_validate(values)


test_settings.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite the name


async def issue_token(
    redis: Redis,
    settings: TokensSettings,
    *,
    kind: str | TokenKind = "global",
    permissions: Iterable[Permission | str] = ALL_PERMISSIONS,
    team: str | None = None,
    teams: Iterable[str] = (),
    role: str | Role = "admin",
    expires_in_s: int | None = None,
) -> tuple[str, Principal]:
    """A valid raw token and its principal, creating the user and teams it needs.

    ``global``: org-wide with ``permissions``. ``team``: bound to ``team``. ``user``: a new user
    with ``role`` who belongs to ``teams`` (and ``team`` if given).
    """
    service = TokenService(redis, settings)
    kind = TokenKind(kind)
    wanted = set(teams) | ({team} if team else set())
    existing = {keys.text(t) for t in await redis.smembers(TEAMS_KEY)}
    for name in sorted(wanted - existing):
        await service.create_team(name=name, actor=None)
    if kind is TokenKind.global_:
        created = await service.create_token(
            kind=kind,
            name="test-global",
            actor=None,
            permissions=[Permission(p) for p in permissions],
            expires_in_s=expires_in_s,
        )
    elif kind is TokenKind.team:
        if team is None:
            raise ValueError("a team token needs team=")
        created = await service.create_token(
            kind=kind, name="test-team", actor=None, team=team, expires_in_s=expires_in_s
        )
    else:
        user = await service.create_user(
            email=f"user-{secrets.token_hex(4)}@example.test",
            role=Role(role),
            teams=sorted(wanted),
            actor=None,
        )
        created = await service.create_token(
            kind=kind, name="test-user", actor=None, user_id=user.id, expires_in_s=expires_in_s
        )
    validator = build_validator(settings, redis)
    principal = await validator.authenticate(created.raw)
    await validator.stop()
    return created.raw, principal
