"""The organisation always keeps an active owner: the last one cannot be deactivated or demoted."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from services.tokens.service import TokenService
from shared.auth import Principal
from shared.errors import ConflictError, ForbiddenError
from shared.settings.tokens import TokensSettings
from shared.tokens.permissions import Role
from shared.tokens.validator import RedisTokenValidator, build_validator

pytestmark = [pytest.mark.redis]


@pytest.fixture
def validator(redis: Redis, settings: TokensSettings) -> RedisTokenValidator:
    return build_validator(settings, redis)


async def _owner(service: TokenService, validator: RedisTokenValidator) -> Principal:
    user, created = await service.bootstrap_owner(email="first@example.com")
    principal = await validator.authenticate(created.raw)
    assert principal.user_id == user.id
    return principal


async def test_last_owner_cannot_leave(
    service: TokenService, validator: RedisTokenValidator
) -> None:
    owner = await _owner(service, validator)
    assert owner.user_id is not None

    with pytest.raises(ConflictError, match="last active owner"):
        await service.deactivate_user(user_id=owner.user_id, actor=owner)
    with pytest.raises(ConflictError, match="last active owner"):
        await service.set_role(user_id=owner.user_id, role=Role.admin, actor=owner)
    assert (await service.get_user(user_id=owner.user_id)).active


async def test_an_owner_may_leave_once_another_exists(
    service: TokenService, validator: RedisTokenValidator
) -> None:
    owner = await _owner(service, validator)
    assert owner.user_id is not None
    second = await service.create_user(email="second@example.com", role=Role.owner, actor=owner)

    demoted = await service.set_role(user_id=owner.user_id, role=Role.admin, actor=owner)
    assert demoted.role is Role.admin
    # Now `second` is the only owner left, and it must stay.
    with pytest.raises(ConflictError, match="last active owner"):
        await service.deactivate_user(user_id=second.id, actor=None)
    assert (await service.get_user(user_id=second.id)).active


async def _demote_once_mid_transaction(
    monkeypatch: pytest.MonkeyPatch, service: TokenService, user_id: str
) -> list[str]:
    """Make another request demote ``user_id`` while a change is between its checks and its
    EXEC (inside ``_keep_an_owner``, after the acting owner's record is watched)."""
    original = TokenService._keep_an_owner
    done: list[str] = []

    async def racing(self: TokenService, pipe: Any, leaving: Any) -> None:
        if not done:
            done.append(user_id)
            await service.set_role(user_id=user_id, role=Role.admin, actor=None)
        await original(self, pipe, leaving)

    monkeypatch.setattr(TokenService, "_keep_an_owner", racing)
    return done


async def test_an_owner_demoted_mid_change_cannot_grant_the_owner_role(
    service: TokenService, validator: RedisTokenValidator, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await _owner(service, validator)
    assert owner.user_id is not None
    await service.create_user(email="other-owner@example.com", role=Role.owner, actor=owner)
    member = await service.create_user(email="m@example.com", role=Role.member, actor=owner)
    raced = await _demote_once_mid_transaction(monkeypatch, service, owner.user_id)

    with pytest.raises(ForbiddenError, match="only an owner"):
        await service.set_role(user_id=member.id, role=Role.owner, actor=owner)
    assert raced  # the demotion really happened between check and EXEC
    assert (await service.get_user(user_id=member.id)).role is Role.member


async def test_an_owner_demoted_mid_change_cannot_deactivate_an_owner(
    service: TokenService, validator: RedisTokenValidator, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await _owner(service, validator)
    assert owner.user_id is not None
    target = await service.create_user(email="t@example.com", role=Role.owner, actor=owner)
    await service.create_user(email="third@example.com", role=Role.owner, actor=owner)
    raced = await _demote_once_mid_transaction(monkeypatch, service, owner.user_id)

    with pytest.raises(ForbiddenError, match="only an owner"):
        await service.deactivate_user(user_id=target.id, actor=owner)
    assert raced
    assert (await service.get_user(user_id=target.id)).active
