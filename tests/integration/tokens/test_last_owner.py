"""The organisation always keeps an active owner: the last one cannot be deactivated or demoted."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from services.tokens.service import TokenService
from shared.auth import Principal
from shared.errors import ConflictError
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
