"""Users, roles and teams: just enough organisation to give tokens their meaning."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from typing import Final

from redis.asyncio.client import Pipeline

from services.tokens._base import Stager, StoreBase, require
from services.tokens.models import TeamRead, UserRead
from shared.auth import Permission, Principal
from shared.errors import ConflictError, ForbiddenError, NotFoundError, ValidationFailedError
from shared.teams import TEAM_NAME_RE, TEAMS_KEY
from shared.tokens import keys
from shared.tokens.permissions import Role
from shared.tokens.records import UserRecord

__all__ = ["DirectoryService"]

"""Team names become Kafka topic suffixes, so they keep to the topic-safe alphabet."""
EMAIL_RE: Final = re.compile(r"^[!-?A-~]{1,64}@[!-?A-~]{1,255}$")
"""Printable ASCII without blanks around one ``@``: the same in Python and in JSON Schema
(their ``\\s`` differ on control characters), so the API's schema can state it exactly."""


def _new_user_id() -> str:
    return "usr_" + secrets.token_hex(8)


class DirectoryService(StoreBase):
    """Use cases on users and teams; every change emits its event in the same transaction."""

    # -- teams ---------------------------------------------------------------------------

    async def create_team(self, *, name: str, actor: Principal | None) -> TeamRead:
        """Creates team ``name``; 409 if it exists."""
        require(actor, Permission.teams_write)
        if not TEAM_NAME_RE.match(name):
            raise ValidationFailedError(
                "team names are 1-63 characters of a-z, 0-9, '.', '_' and '-'", team=name
            )

        async def prepare(pipe: Pipeline) -> Stager:
            if await pipe.sismember(TEAMS_KEY, name):
                raise ConflictError(f"team {name!r} already exists", team=name)

            def stage(p: Pipeline) -> None:
                p.sadd(TEAMS_KEY, name)
                self._event(p, "team.created", actor, f"team/{name}", {"team": name})

            return stage

        await self._transact([TEAMS_KEY], prepare)
        return TeamRead(name=name)

    async def list_teams(self) -> list[TeamRead]:
        names = await self._redis.smembers(TEAMS_KEY)
        return [TeamRead(name=keys.text(n)) for n in sorted(names)]

    async def _check_teams_exist(self, pipe: Pipeline, teams: Iterable[str]) -> None:
        for team in teams:
            if not await pipe.sismember(TEAMS_KEY, team):
                raise NotFoundError(f"no team {team!r}", team=team)

    # -- users ---------------------------------------------------------------------------

    async def create_user(
        self, *, email: str, role: Role, teams: Iterable[str] = (), actor: Principal | None
    ) -> UserRead:
        """Creates an active user; 409 if the email is taken."""
        require(actor, Permission.users_write)
        email = email.strip().lower()
        if not EMAIL_RE.match(email):
            raise ValidationFailedError("not an email address", email=email)
        team_set = frozenset(teams)
        user = UserRecord(
            id=_new_user_id(), email=email, role=role, teams=team_set, created_at=self._now()
        )
        email_key = keys.user_email_key(email)

        async def prepare(pipe: Pipeline) -> Stager:
            if role is Role.owner and not await self._is_owner(actor, pipe):
                raise ForbiddenError("only an owner may create another owner")
            if await pipe.exists(email_key):
                raise ConflictError(f"a user with email {email!r} exists", email=email)
            await self._check_teams_exist(pipe, team_set)
            return self._stage_new_user(user, actor)

        await self._transact([email_key, TEAMS_KEY], prepare)
        return UserRead(**user.model_dump())

    def _stage_new_user(self, user: UserRecord, actor: Principal | None) -> Stager:
        def stage(p: Pipeline) -> None:
            p.set(keys.user_key(user.id), user.model_dump_json())
            p.set(keys.user_email_key(user.email), user.id)
            p.sadd(keys.USERS, user.id)
            self._event(
                p,
                "user.created",
                actor,
                f"user/{user.id}",
                {"email": user.email, "role": user.role.value, "teams": sorted(user.teams)},
            )

        return stage

    async def deactivate_user(self, *, user_id: str, actor: Principal | None) -> UserRead:
        """Deactivates ``user_id``; its user tokens stop working in every process at once."""
        require(actor, Permission.users_write)
        updated: list[UserRecord] = []

        async def prepare(pipe: Pipeline) -> Stager:
            user = await self._load_user(pipe, user_id)
            if user.role is Role.owner and not await self._is_owner(actor, pipe):
                raise ForbiddenError("only an owner may deactivate an owner")
            if not user.active:
                updated.append(user)
                return lambda _p: None
            await self._keep_an_owner(pipe, user)
            new = user.model_copy(update={"active": False, "deactivated_at": self._now()})
            updated.append(new)

            def stage(p: Pipeline) -> None:
                p.set(keys.user_key(user_id), new.model_dump_json())
                self._event(p, "user.deactivated", actor, f"user/{user_id}", {"email": user.email})
                self._invalidate(p, f"user:{user_id}")

            return stage

        await self._transact([keys.user_key(user_id)], prepare)
        return UserRead(**updated[-1].model_dump())

    async def set_role(self, *, user_id: str, role: Role, actor: Principal | None) -> UserRead:
        """Changes the role; the user's tokens follow in every process at once."""
        require(actor, Permission.users_write)
        updated: list[UserRecord] = []

        async def prepare(pipe: Pipeline) -> Stager:
            # Every check reads inside the transaction (watched keys): check and change are one.
            user = await self._load_user(pipe, user_id)
            if Role.owner in (user.role, role) and not await self._is_owner(actor, pipe):
                raise ForbiddenError("only an owner may grant or take away the owner role")
            new = user.model_copy(update={"role": role})
            updated.append(new)
            if user.role is role:
                return lambda _p: None
            await self._keep_an_owner(pipe, user)

            def stage(p: Pipeline) -> None:
                p.set(keys.user_key(user_id), new.model_dump_json())
                self._event(
                    p,
                    "user.role_changed",
                    actor,
                    f"user/{user_id}",
                    {"before": user.role.value, "after": role.value},
                )
                self._invalidate(p, f"user:{user_id}")

            return stage

        await self._transact([keys.user_key(user_id)], prepare)
        return UserRead(**updated[-1].model_dump())

    async def _keep_an_owner(self, pipe: Pipeline, leaving: UserRecord) -> None:
        """Refuse to deactivate or demote the last active owner: nobody could grant the owner
        role again. The other users' records are watched, so two owners demoting each other at
        once cannot both succeed."""
        if leaving.role is not Role.owner or not leaving.active:
            return
        others = [
            keys.user_key(i)
            for i in sorted(keys.text(m) for m in await pipe.smembers(keys.USERS))
            if i != leaving.id
        ]
        if others:
            await pipe.watch(*others)
            for raw in await pipe.mget(others):
                other = UserRecord.model_validate_json(raw) if raw is not None else None
                if other is not None and other.active and other.role is Role.owner:
                    return
        raise ConflictError(
            "this is the last active owner; make another user an owner first",
            user_id=leaving.id,
        )

    async def get_user(self, *, user_id: str) -> UserRead:
        return UserRead(**(await self._load_user(self._redis, user_id)).model_dump())

    async def list_users(self) -> list[UserRead]:
        ids = sorted(keys.text(i) for i in await self._redis.smembers(keys.USERS))
        if not ids:
            return []
        raws = await self._redis.mget([keys.user_key(i) for i in ids])
        return [UserRead.model_validate_json(r) for r in raws if r is not None]
