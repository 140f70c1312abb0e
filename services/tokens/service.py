"""The token service's use cases: issue, rotate, revoke, expire, list; plus bootstrap.

Every change is one MULTI/EXEC holding the new records, the lifecycle event (outbox) and, when
cached principals become wrong, the pub/sub invalidation. Rule of thumb for authorisation: a
principal can never mint a credential with rights it does not hold itself.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from services.tokens._base import Stager, require, utc_now
from services.tokens.directory import DirectoryService
from services.tokens.errors import AlreadyBootstrappedError
from services.tokens.models import CreatedToken, TokenRead, UserRead
from shared.auth import Permission, Principal, TokenKind
from shared.errors import ConflictError, ForbiddenError, NotFoundError, ValidationFailedError
from shared.settings.tokens import TokensSettings
from shared.teams import TEAMS_KEY
from shared.tokens import keys
from shared.tokens.permissions import ROLE_PERMISSIONS, TEAM_TOKEN_PERMISSIONS, Role
from shared.tokens.records import TokenRecord, TokenStatus, UserRecord

__all__ = ["TokenService"]

_REF_RETENTION: Final = timedelta(days=7)
"""Lookup entries outlive their token this long, so late uses get ``token_expired`` /
``token_revoked`` rather than ``token_unknown``."""
_NAME_MAX: Final = 100
_DESCRIPTION_MAX: Final = 1000


def _new_token_id() -> str:
    return "tok_" + secrets.token_hex(8)


class TokenService(DirectoryService):
    """Tokens, users and teams in Redis. Methods take keyword arguments only."""

    def __init__(
        self, redis: Redis, settings: TokensSettings, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        """``clock``: wall time for issue, expiry and sweep decisions (tests pass their own)."""
        super().__init__(redis, settings, clock=clock)

    # -- bootstrap -----------------------------------------------------------------------

    async def bootstrap_owner(
        self, *, email: str, expires_in_s: int | None = None
    ) -> tuple[UserRead, CreatedToken]:
        """Creates the first owner and one user token for it; refuses a second run."""
        email = email.strip().lower()
        user = UserRecord(
            id="usr_" + secrets.token_hex(8), email=email, role=Role.owner, created_at=self._now()
        )
        raw, record = self._new_token(
            kind=TokenKind.user,
            name="bootstrap",
            description="created by alertyard admin bootstrap",
            permissions=frozenset(),
            team=None,
            user_id=user.id,
            actor=None,
            expires_in_s=expires_in_s,
        )

        async def prepare(pipe: Pipeline) -> Stager:
            if await pipe.exists(keys.BOOTSTRAPPED):
                raise AlreadyBootstrappedError("alertyard is already bootstrapped")
            stage_user = self._stage_new_user(user, None)
            stage_token = self._stage_new_token(record, None)

            def stage(p: Pipeline) -> None:
                p.set(keys.BOOTSTRAPPED, user.id)
                stage_user(p)
                stage_token(p)

            return stage

        await self._transact([keys.BOOTSTRAPPED], prepare)
        return UserRead(**user.model_dump()), CreatedToken(raw=raw, token=_read(record, None))

    # -- create --------------------------------------------------------------------------

    async def create_token(
        self,
        *,
        kind: TokenKind,
        name: str,
        actor: Principal | None,
        permissions: Iterable[Permission] | None = None,
        team: str | None = None,
        user_id: str | None = None,
        expires_in_s: int | None = None,
        description: str = "",
    ) -> CreatedToken:
        """Issues a token; the returned ``raw`` secret is never available again."""
        require(actor, Permission.tokens_write)
        if kind is TokenKind.global_:
            if team or user_id:
                raise ValidationFailedError("a global token has no team and no user")
            chosen = frozenset(permissions or ())
            if not chosen:
                raise ValidationFailedError("choose the permissions of a global token")
            if actor is not None and not actor.is_admin:
                raise ForbiddenError("only org-wide principals may create global tokens")
            _must_hold(actor, chosen)
        elif kind is TokenKind.team:
            if not team or user_id:
                raise ValidationFailedError("a team token needs a team and no user")
            if permissions:
                raise ValidationFailedError("team tokens always hold the team permission set")
            chosen = TEAM_TOKEN_PERMISSIONS
            if actor is not None and not actor.may_manage_team(team):
                raise ForbiddenError(f"this token may not manage team {team!r}", team=team)
            _must_hold(actor, chosen)
        else:
            if team or permissions:
                raise ValidationFailedError("a user token follows its user: no team/permissions")
            user_id = user_id or (actor.user_id if actor else None)
            if not user_id:
                raise ValidationFailedError("a user token needs a user")
            chosen = frozenset()
        raw, record = self._new_token(
            kind=kind,
            name=name,
            description=description,
            permissions=chosen,
            team=team,
            user_id=user_id,
            actor=actor,
            expires_in_s=expires_in_s,
        )

        async def prepare(pipe: Pipeline) -> Stager:
            if team is not None:
                await self._check_teams_exist(pipe, [team])
            if user_id is not None:
                user = await self._load_user(pipe, user_id)
                if not user.active:
                    raise ValidationFailedError("the user is deactivated", user_id=user_id)
                if actor is not None and actor.user_id != user_id:
                    if not actor.is_admin:
                        raise ForbiddenError("you may only create user tokens for yourself")
                    _must_hold(actor, ROLE_PERMISSIONS[user.role])
            return self._stage_new_token(record, actor)

        watch = [TEAMS_KEY] if team else [keys.user_key(user_id)] if user_id else []
        await self._transact(watch, prepare)
        return CreatedToken(raw=raw, token=_read(record, None))

    def _new_token(
        self,
        *,
        kind: TokenKind,
        name: str,
        description: str,
        permissions: frozenset[Permission],
        team: str | None,
        user_id: str | None,
        actor: Principal | None,
        expires_in_s: int | None,
    ) -> tuple[str, TokenRecord]:
        name = name.strip()
        if not 1 <= len(name) <= _NAME_MAX:
            raise ValidationFailedError(f"a token name has 1-{_NAME_MAX} characters")
        if len(description) > _DESCRIPTION_MAX:
            raise ValidationFailedError(f"a description has at most {_DESCRIPTION_MAX} characters")
        ttl = self._settings.default_ttl_s if expires_in_s is None else expires_in_s
        if not 60 <= ttl <= self._settings.max_ttl_s:
            raise ValidationFailedError(
                f"expiry must be between 60 s and {self._settings.max_ttl_s} s",
                expires_in_s=ttl,
            )
        raw = self._codec.generate(kind)
        now = self._now()
        record = TokenRecord(
            id=_new_token_id(),
            kind=kind,
            name=name,
            description=description,
            permissions=permissions,
            team=team,
            user_id=user_id,
            created_by_user=actor.user_id if actor else None,
            created_by_token=actor.token_id if actor else None,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
            digest=self._codec.digest(raw).hex(),
        )
        return raw, record

    def _stage_new_token(self, record: TokenRecord, actor: Principal | None) -> Stager:
        def stage(p: Pipeline) -> None:
            self._put_ref(p, record.digest, record)
            p.set(keys.token_key(record.id), record.model_dump_json())
            p.sadd(keys.TOKENS, record.id)
            p.zadd(keys.EXPIRY_INDEX, {record.id: record.expires_at.timestamp()})
            self._event(p, "token.created", actor, f"token/{record.id}", _event_data(record))

        return stage

    def _put_ref(self, pipe: Pipeline, digest_hex: str, record: TokenRecord) -> None:
        ref = keys.token_ref_key(digest_hex)
        pipe.set(ref, keys.token_ref(record.id, record.user_id))
        pipe.expireat(ref, record.expires_at + _REF_RETENTION)

    # -- rotate / revoke / expire --------------------------------------------------------

    async def rotate_token(
        self, *, token_id: str, actor: Principal | None, grace_s: int = 0
    ) -> CreatedToken:
        """A new secret for the token; the old one keeps working for ``grace_s`` (<= 24 h)."""
        require(actor, Permission.tokens_write)
        if not 0 <= grace_s <= self._settings.max_rotation_grace_s:
            raise ValidationFailedError(
                f"grace must be between 0 and {self._settings.max_rotation_grace_s} s",
                grace_s=grace_s,
            )
        result: list[tuple[str, TokenRecord]] = []

        async def prepare(pipe: Pipeline) -> Stager:
            old = await self._load_token(pipe, token_id)
            _must_manage(actor, old)
            now = self._now()
            if old.status(now) is not TokenStatus.active:  # the request is fine; the state is not
                raise ConflictError(
                    f"only active tokens can be rotated; this one is {old.status(now).value}",
                    token_id=token_id,
                )
            raw = self._codec.generate(old.kind)
            until = now + timedelta(seconds=grace_s) if grace_s else None
            new = old.model_copy(
                update={
                    "digest": self._codec.digest(raw).hex(),
                    "previous_digest": old.digest,
                    "previous_until": until,
                    "rotated_at": now,
                }
            )
            result.append((raw, new))

            def stage(p: Pipeline) -> None:
                self._put_ref(p, new.digest, new)
                p.set(keys.token_key(token_id), new.model_dump_json())
                self._event(
                    p,
                    "token.rotated",
                    actor,
                    f"token/{token_id}",
                    {
                        **_event_data(new),
                        "grace_s": grace_s,
                        "previous_secret_valid_until": until.isoformat() if until else None,
                    },
                )
                self._invalidate(p, f"token:{token_id}")

            return stage

        await self._transact([keys.token_key(token_id)], prepare)
        raw, new = result[-1]
        return CreatedToken(raw=raw, token=_read(new, None))

    async def revoke_token(self, *, token_id: str, actor: Principal | None) -> TokenRead:
        """Revokes the token (idempotent); every validator rejects it at once."""
        require(actor, Permission.tokens_write)
        result: list[TokenRecord] = []

        async def prepare(pipe: Pipeline) -> Stager:
            old = await self._load_token(pipe, token_id)
            _must_manage(actor, old)
            if old.revoked_at is not None:
                result.append(old)
                return lambda _p: None
            new = old.model_copy(update={"revoked_at": self._now()})
            result.append(new)

            def stage(p: Pipeline) -> None:
                p.set(keys.token_key(token_id), new.model_dump_json())
                p.zrem(keys.EXPIRY_INDEX, token_id)
                self._event(p, "token.revoked", actor, f"token/{token_id}", _event_data(new))
                self._invalidate(p, f"token:{token_id}")

            return stage

        await self._transact([keys.token_key(token_id)], prepare)
        return await self._with_last_used(result[-1])

    async def expire_due_tokens(self) -> int:
        """Marks tokens past their expiry and emits ``token.expired`` once for each."""
        now = self._now()
        due = cast(
            list[bytes],
            await self._redis.zrangebyscore(keys.EXPIRY_INDEX, "-inf", now.timestamp()),
        )
        expired = 0
        for raw_id in due:
            expired += await self._expire_one(raw_id.decode(), now)
        return expired

    async def _expire_one(self, token_id: str, now: datetime) -> bool:
        emitted: list[bool] = []

        async def prepare(pipe: Pipeline) -> Stager:
            raw = await pipe.get(keys.token_key(token_id))
            record = TokenRecord.model_validate_json(raw) if raw is not None else None
            if record is None or record.revoked_at or record.expired_at:

                def forget(p: Pipeline) -> None:
                    p.zrem(keys.EXPIRY_INDEX, token_id)  # already final: nothing to announce

                return forget
            new = record.model_copy(update={"expired_at": now})
            emitted.append(True)

            def stage(p: Pipeline) -> None:
                p.set(keys.token_key(token_id), new.model_dump_json())
                p.zrem(keys.EXPIRY_INDEX, token_id)
                self._event(p, "token.expired", None, f"token/{token_id}", _event_data(new))
                self._invalidate(p, f"token:{token_id}")

            return stage

        await self._transact([keys.token_key(token_id)], prepare)
        return bool(emitted)

    # -- read ----------------------------------------------------------------------------

    async def get_token(self, *, token_id: str, actor: Principal | None) -> TokenRead:
        require(actor, Permission.tokens_read)
        record = await self._load_token(self._redis, token_id)
        _must_manage(actor, record)
        return await self._with_last_used(record)

    async def list_tokens(self, *, actor: Principal | None) -> list[TokenRead]:
        """Tokens the actor may see (all of them for org-wide principals), newest first."""
        require(actor, Permission.tokens_read)
        ids = sorted(keys.text(i) for i in await self._redis.smembers(keys.TOKENS))
        if not ids:
            return []
        raws = await self._redis.mget([keys.token_key(i) for i in ids])
        records = [TokenRecord.model_validate_json(r) for r in raws if r is not None]
        visible = [r for r in records if _may_see(actor, r)]
        used = await self._redis.mget([keys.token_last_used_key(r.id) for r in visible] or [""])
        reads = [_read(r, u) for r, u in zip(visible, used, strict=False)]
        return sorted(reads, key=lambda t: t.created_at, reverse=True)

    async def _load_token(self, reader: Redis | Pipeline, token_id: str) -> TokenRecord:
        raw = await reader.get(keys.token_key(token_id))
        if raw is None:
            raise NotFoundError(f"no token {token_id!r}", token_id=token_id)
        return TokenRecord.model_validate_json(raw)

    async def _with_last_used(self, record: TokenRecord) -> TokenRead:
        return _read(record, await self._redis.get(keys.token_last_used_key(record.id)))


def _must_hold(actor: Principal | None, wanted: frozenset[Permission]) -> None:
    if actor is None:
        return
    missing = sorted(p.value for p in wanted - actor.permissions)
    if missing:
        raise ForbiddenError("a token cannot be given rights its creator lacks", missing=missing)


def _may_see(actor: Principal | None, record: TokenRecord) -> bool:
    if actor is None or actor.is_admin:
        return True
    if record.kind is TokenKind.user:
        return record.user_id is not None and record.user_id == actor.user_id
    if record.kind is TokenKind.team:
        return record.team is not None and actor.may_manage_team(record.team)
    return False


def _must_manage(actor: Principal | None, record: TokenRecord) -> None:
    if not _may_see(actor, record):
        raise ForbiddenError("this token may not manage that token", token_id=record.id)


def _event_data(record: TokenRecord) -> dict[str, Any]:
    """What an event says about a token: ids and attributes, never the secret or its hash."""
    return {
        "token_id": record.id,
        "kind": record.kind.value,
        "name": record.name,
        "team": record.team,
        "user_id": record.user_id,
        "permissions": sorted(p.value for p in record.permissions),
        "expires_at": record.expires_at.isoformat(),
    }


def _read(record: TokenRecord, last_used: bytes | str | None) -> TokenRead:
    now = datetime.now(UTC)
    previous_until = record.previous_until
    if previous_until is not None and previous_until <= now:
        previous_until = None
    return TokenRead(
        id=record.id,
        kind=record.kind,
        name=record.name,
        description=record.description,
        status=record.status(now),
        permissions=sorted(record.permissions),
        team=record.team,
        user_id=record.user_id,
        created_by_user=record.created_by_user,
        created_by_token=record.created_by_token,
        created_at=record.created_at,
        expires_at=record.expires_at,
        revoked_at=record.revoked_at,
        rotated_at=record.rotated_at,
        previous_secret_valid_until=previous_until,
        last_used_at=datetime.fromisoformat(keys.text(last_used)) if last_used else None,
    )
