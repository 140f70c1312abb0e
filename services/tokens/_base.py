"""What the token service's use cases share: the transaction helper, events, actor checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError, WatchError

from services.tokens.errors import ChangeNotRecordedError
from shared.auth import Permission, Principal
from shared.errors import ForbiddenError, NotFoundError
from shared.events import Event, actor_of
from shared.outbox import stage_event
from shared.retries import RetryPolicy
from shared.settings.tokens import TokensSettings
from shared.tokens import keys
from shared.tokens.permissions import Role
from shared.tokens.records import UserRecord
from shared.tokens.token_format import TokenCodec

__all__ = ["EVENT_SOURCE", "Stager", "StoreBase", "utc_now"]

EVENT_SOURCE: Final = "tokens"
TOKEN_CHANGE_RETRY: Final = RetryPolicy(
    name="a token, user or team change that lost a WATCH race to another change",
    on=WatchError,
    wait_initial=0.001,
    wait_max=0.05,
    wait_jitter=0.005,  # de-synchronises the writers that collided
    attempts=8,
)


def utc_now() -> datetime:
    return datetime.now(UTC)


Stager = Callable[[Pipeline], None]
"""Queues a change's writes (and its event) on a MULTI pipeline."""


class StoreBase:
    """Redis access shared by the token, user and team use cases."""

    def __init__(
        self, redis: Redis, settings: TokensSettings, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._settings = settings
        self._codec = TokenCodec(settings.hmac_secret.get_secret_value().encode())
        self._channel = settings.invalidation_channel

    async def ping(self) -> bool:
        """True when Redis answers (readiness)."""
        return bool(await self._redis.ping())

    def _now(self) -> datetime:
        """Wall time for issue, expiry and sweep decisions (tests pass ``clock=``)."""
        return self._clock()

    async def _transact(
        self, watch: list[str], prepare: Callable[[Pipeline], Awaitable[Stager]]
    ) -> None:
        """Run ``prepare`` (reads and checks, watching ``watch``), then apply what it staged in
        one MULTI/EXEC together with its outbox event; retried when a watched key changed.

        Errors from ``prepare`` (not found, forbidden, ...) propagate unchanged and nothing is
        written. If Redis fails the EXEC, the change and its event are both missing and the
        caller gets ``change_not_recorded``.
        """
        try:
            async for attempt in TOKEN_CHANGE_RETRY.retrying():
                with attempt:
                    async with self._redis.pipeline(transaction=True) as pipe:
                        if watch:
                            await pipe.watch(*watch)
                        stage = await prepare(pipe)
                        pipe.multi()  # type: ignore[no-untyped-call]  # unannotated in redis-py
                        stage(pipe)
                        await pipe.execute()
                        return
        except WatchError:
            raise ChangeNotRecordedError(
                "too many concurrent changes to the same record; try again"
            ) from None
        except RedisError as exc:
            raise ChangeNotRecordedError(
                "the change and its audit event could not be recorded; nothing was changed",
                error=type(exc).__name__,
            ) from None

    def _event(
        self,
        pipe: Pipeline,
        type_: str,
        actor: Principal | None,
        subject: str,
        data: dict[str, Any],
    ) -> None:
        event = Event(
            type=type_, source=EVENT_SOURCE, actor=actor_of(actor), subject=subject, data=data
        )
        stage_event(pipe, event)

    def _invalidate(self, pipe: Pipeline, message: str) -> None:
        """Tell every validator to drop cached principals (delivered when EXEC applies)."""
        pipe.publish(self._channel, message.encode())

    async def _load_user(self, reader: Redis | Pipeline, user_id: str) -> UserRecord:
        raw = await reader.get(keys.user_key(user_id))
        if raw is None:
            raise NotFoundError(f"no user {user_id!r}", user_id=user_id)
        return UserRecord.model_validate_json(raw)

    async def _is_owner(self, actor: Principal | None, pipe: Pipeline | None = None) -> bool:
        """System actions and active owner users may grant or take away the owner role.

        Given the transaction's ``pipe``, the actor's record is watched too: an owner demoted
        or deactivated while this change is prepared makes the change retry and be refused,
        instead of acting on the rights it had a moment ago.
        """
        if actor is None:
            return True
        if actor.user_id is None:
            return False
        key = keys.user_key(actor.user_id)
        if pipe is not None:
            await pipe.watch(key)
        raw = await (pipe if pipe is not None else self._redis).get(key)
        if raw is None:
            return False
        record = UserRecord.model_validate_json(raw)
        return record.active and record.role is Role.owner


def require(actor: Principal | None, permission: Permission) -> None:
    """Service-level check (the API checks too): ``None`` is the system and may do anything."""
    if actor is not None and not actor.has(permission):
        raise ForbiddenError(f"this token lacks the {permission.value} permission")
