"""Rulesets in Redis: one JSON document per ruleset, a monotonic version, atomic changes.

Keys (prefix ``alertyard:{control}:rules`` by default: the control plane's Redis Cluster slot,
shared with the teams set and the outbox, see :mod:`shared.keyspace`):

* ``<prefix>:current``: the ruleset as JSON (``{"version", "rules"}``);
* ``<prefix>:version``: the version alone, for cheap polling by every router;
* channel ``<prefix>:changed``: a notice with the new version after each change.

Every change runs as ``WATCH`` + read + checks + ``MULTI``: the new document, the version, the
lifecycle event (through :func:`shared.outbox.stage_event`, source ``rules``) and the notice
are written together or not at all. An ``expected_version`` that is not the stored one is a
409 (:class:`VersionConflictError`); without one, a lost race is retried.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import WatchError

from services.rules.control.authz import authorize_change
from services.rules.engine.diff import adopt_ids, diff_rulesets, is_empty_diff
from services.rules.engine.errors import (
    Problem,
    RuleNotFoundError,
    RulesetInvalidError,
    UnknownTeamError,
    VersionConflictError,
)
from services.rules.engine.model import Rule, Ruleset, new_rule_id
from services.rules.engine.scope import AlertSource
from shared.auth import Principal, TokenKind
from shared.events import Event, actor_of
from shared.keyspace import CONTROL
from shared.logging import get_logger
from shared.outbox import stage_event
from shared.retries import RetryPolicy
from shared.teams import TEAMS_KEY
from shared.tokens import keys as token_keys
from shared.tokens.records import TokenRecord

__all__ = ["EVENT_SOURCE", "ChangeResult", "RulesKeys", "RulesStore"]

log = get_logger(__name__)

EVENT_SOURCE: Final = "rules"
RULESET_WATCH_RETRY: Final = RetryPolicy(
    name="a ruleset change that lost a WATCH race to another change",
    on=WatchError,
    wait_initial=0.001,
    wait_max=0.05,
    wait_jitter=0.005,  # de-synchronises the writers that collided
    attempts=20,
)
_MAX_EVENT_RULES: Final = 100
"""Beyond this many changed rules an event lists names and ids only (Kafka message size)."""


@dataclass(frozen=True, slots=True)
class RulesKeys:
    prefix: str = f"{CONTROL}:rules"

    @property
    def current(self) -> str:
        return f"{self.prefix}:current"

    @property
    def version(self) -> str:
        return f"{self.prefix}:version"

    @property
    def channel(self) -> str:
        return f"{self.prefix}:changed"


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """The outcome of a change (or of its dry run)."""

    before: Ruleset
    after: Ruleset
    diff: dict[str, Any]
    applied: bool
    """False for a dry run or when nothing changed."""

    @property
    def version(self) -> int:
        return self.after.version if self.applied else self.before.version


def decode_ruleset(raw: bytes | str | None) -> Ruleset:
    if raw is None:
        return Ruleset()
    return Ruleset.model_validate_json(raw)


def encode_ruleset(ruleset: Ruleset) -> bytes:
    return orjson.dumps(ruleset.dump())


Mutation = Callable[[Ruleset], tuple[Ruleset, list[tuple[str, str, dict[str, Any]]]]]
"""Turns the stored ruleset into the new rules plus events ``(type, subject, data)``."""


class RulesStore:
    """Reads and changes the stored ruleset. Methods take keyword arguments after the subject."""

    def __init__(
        self, redis: Redis, *, keys: RulesKeys | None = None, teams_key: str = TEAMS_KEY
    ) -> None:
        self.redis = redis
        self.keys = keys or RulesKeys()
        self.teams_key = teams_key

    # -- reads -------------------------------------------------------------------------------

    async def get_ruleset(self) -> Ruleset:
        """The stored ruleset (version 0 and no rules when nothing was ever stored)."""
        return decode_ruleset(cast(bytes | None, await self.redis.get(self.keys.current)))

    async def get_version(self) -> int:
        raw = cast(bytes | None, await self.redis.get(self.keys.version))
        return int(raw) if raw is not None else 0

    async def get_rule(self, ref: str) -> tuple[Rule, int]:
        """A rule by id or name, with the ruleset version it was read at."""
        ruleset = await self.get_ruleset()
        return _find(ruleset, ref), ruleset.version

    async def known_teams(self) -> set[str]:
        members = cast(set[bytes], await self.redis.smembers(self.teams_key))
        return {member.decode() for member in members}

    async def token_source(self, token_id: str) -> AlertSource:
        """The :class:`AlertSource` of a stored token (a team token carries its team)."""
        raw = cast(bytes | None, await self.redis.get(token_keys.token_key(token_id)))
        if raw is None:
            return AlertSource(token_id=token_id)
        record = TokenRecord.model_validate_json(raw)
        team = record.team if record.kind is TokenKind.team else None
        return AlertSource(token_id=token_id, team=team)

    async def teams_with_sources(self, ruleset: Ruleset) -> set[str]:
        """Teams that own at least one source: a live (unrevoked, unexpired) team token, or an
        assignment in ``ruleset``. Team rules of any other team can never match."""
        owners = {team for teams in ruleset.sources.values() for team in teams}
        now = datetime.now(UTC)
        ids = sorted(
            m.decode() for m in cast(set[bytes], await self.redis.smembers(token_keys.TOKENS))
        )
        for start in range(0, len(ids), 500):
            chunk = [token_keys.token_key(i) for i in ids[start : start + 500]]
            for raw in cast(list[bytes | None], await self.redis.mget(chunk)):
                if raw is None:
                    continue
                record = TokenRecord.model_validate_json(raw)
                live = record.revoked_at is None and record.expires_at > now
                if record.kind is TokenKind.team and record.team and live:
                    owners.add(record.team)
        return owners

    # -- changes -----------------------------------------------------------------------------

    async def create_rule(
        self,
        rule: Rule,
        *,
        position: int | None = None,
        principal: Principal | None,
        expected_version: int | None = None,
    ) -> tuple[Rule, int]:
        """Insert ``rule`` (at the end of the ordinary rules by default); the stored rule and the
        new version."""

        def mutate(before: Ruleset) -> tuple[Ruleset, list[tuple[str, str, dict[str, Any]]]]:
            if before.by_name(rule.name) is not None:
                raise _duplicate(rule.name)
            fresh = (
                rule
                if before.by_id(rule.id) is None
                else rule.model_copy(update={"id": new_rule_id()})
            )
            rules = list(before.rules)
            rules.insert(len(rules) if position is None else min(position, len(rules)), fresh)
            after = before.evolve(version=before.version + 1, rules=tuple(rules))
            stored = _find(after, fresh.id)
            return after, [("rule.created", f"rule/{fresh.id}", {"after": stored.dump()})]

        result = await self._change(mutate, principal=principal, expected_version=expected_version)
        return _find(result.after, rule.name), result.version

    async def update_rule(
        self,
        ref: str,
        rule: Rule,
        *,
        principal: Principal | None,
        expected_version: int | None = None,
    ) -> tuple[Rule, int]:
        """Replace the rule ``ref`` (id or name) in place, keeping its id and position."""

        def mutate(before: Ruleset) -> tuple[Ruleset, list[tuple[str, str, dict[str, Any]]]]:
            old = _find(before, ref)
            other = before.by_name(rule.name)
            if other is not None and other.id != old.id:
                raise _duplicate(rule.name)
            new = rule.model_copy(update={"id": old.id, "position": old.position})
            rules = tuple(new if r.id == old.id else r for r in before.rules)
            after = before.evolve(version=before.version + 1, rules=rules)
            data = {"before": old.dump(), "after": _find(after, old.id).dump()}
            return after, [("rule.updated", f"rule/{old.id}", data)]

        result = await self._change(mutate, principal=principal, expected_version=expected_version)
        return _find(result.after, rule.name), result.version

    async def delete_rule(
        self, ref: str, *, principal: Principal | None, expected_version: int | None = None
    ) -> int:
        """Remove the rule ``ref``; the new version."""

        def mutate(before: Ruleset) -> tuple[Ruleset, list[tuple[str, str, dict[str, Any]]]]:
            old = _find(before, ref)
            rules = tuple(r for r in before.rules if r.id != old.id)
            after = before.evolve(version=before.version + 1, rules=rules)
            return after, [("rule.deleted", f"rule/{old.id}", {"before": old.dump()})]

        result = await self._change(mutate, principal=principal, expected_version=expected_version)
        return result.version

    async def reorder(
        self, refs: list[str], *, principal: Principal | None, expected_version: int | None = None
    ) -> ChangeResult:
        """Put the rules in the order of ``refs`` (ids or names; every rule exactly once)."""

        def mutate(before: Ruleset) -> tuple[Ruleset, list[tuple[str, str, dict[str, Any]]]]:
            ordered = [_find(before, ref) for ref in refs]
            if len({r.id for r in ordered}) != len(ordered) or len(ordered) != len(before.rules):
                raise _invalid("<ruleset>", "reorder must list every rule exactly once")
            after = before.evolve(version=before.version + 1, rules=tuple(ordered))
            return after, [_applied_event("reorder", before, after)]

        return await self._change(mutate, principal=principal, expected_version=expected_version)

    async def apply(
        self,
        ruleset: Ruleset,
        *,
        principal: Principal | None,
        expected_version: int | None = None,
        dry_run: bool = False,
        replace_sources: bool = True,
    ) -> ChangeResult:
        """Replace the whole ruleset (rules matched to stored ones by id, else by name).

        ``replace_sources=False`` keeps the stored source assignments (a file without a
        ``sources`` section leaves them alone)."""

        def mutate(before: Ruleset) -> tuple[Ruleset, list[tuple[str, str, dict[str, Any]]]]:
            incoming = adopt_ids(before, ruleset)
            sources = incoming.sources if replace_sources else before.sources
            after = Ruleset(version=before.version + 1, rules=incoming.rules, sources=sources)
            return after, [_applied_event("apply", before, after)]

        return await self._change(
            mutate, principal=principal, expected_version=expected_version, dry_run=dry_run
        )

    async def assign_source(
        self,
        token_id: str,
        teams: list[str],
        *,
        principal: Principal | None,
        expected_version: int | None = None,
    ) -> ChangeResult:
        """Make ``teams`` the owners of the alerts token ``token_id`` publishes (none: remove
        the assignment). Admins only (see :mod:`.authz`)."""

        def mutate(before: Ruleset) -> tuple[Ruleset, list[tuple[str, str, dict[str, Any]]]]:
            sources = {**before.sources, token_id: tuple(teams)}
            after = Ruleset(version=before.version + 1, rules=before.rules, sources=sources)
            data = {
                "token_id": token_id,
                "before": list(before.sources.get(token_id, ())),
                "after": list(after.sources.get(token_id, ())),
            }
            return after, [("source.assigned", f"source/{token_id}", data)]

        return await self._change(mutate, principal=principal, expected_version=expected_version)

    async def _change(
        self,
        mutate: Mutation,
        *,
        principal: Principal | None,
        expected_version: int | None,
        dry_run: bool = False,
    ) -> ChangeResult:
        try:
            async for attempt in RULESET_WATCH_RETRY.retrying():
                with attempt:
                    return await self._change_once(
                        mutate,
                        principal=principal,
                        expected_version=expected_version,
                        dry_run=dry_run,
                    )
        except WatchError:
            pass
        raise VersionConflictError("the ruleset kept changing; retry later")

    async def _change_once(
        self,
        mutate: Mutation,
        *,
        principal: Principal | None,
        expected_version: int | None,
        dry_run: bool,
    ) -> ChangeResult:
        """One WATCH/MULTI round; raises ``WatchError`` when another change won the race."""
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(self.keys.current, self.teams_key)
                before = decode_ruleset(cast(bytes | None, await pipe.get(self.keys.current)))
                if expected_version is not None and before.version != expected_version:
                    raise VersionConflictError(
                        f"the ruleset is at version {before.version}, not {expected_version};"
                        " re-read it and try again",
                        current_version=before.version,
                    )
                after, events = mutate(before)
                diff = diff_rulesets(before, after)
                if principal is not None:
                    authorize_change(principal, before, after)
                members = cast(set[bytes], await pipe.smembers(self.teams_key))
                _check_teams(diff, {member.decode() for member in members})
                if dry_run or is_empty_diff(diff):
                    return ChangeResult(before, after, diff, applied=False)
                pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
                pipe.set(self.keys.current, encode_ruleset(after))
                pipe.set(self.keys.version, after.version)
                actor = actor_of(principal)
                for event_type, subject, data in events:
                    data = {**data, "version": after.version}
                    stage_event(
                        pipe,
                        Event(
                            type=event_type,
                            source=EVENT_SOURCE,
                            actor=actor,
                            subject=subject,
                            data=data,
                        ),
                    )
                pipe.publish(self.keys.channel, str(after.version))
                await pipe.execute()
            except WatchError:
                if expected_version is not None:
                    raise VersionConflictError(
                        "the ruleset changed while this change was being made; retry",
                        expected_version=expected_version,
                    ) from None
                raise
        log.info(
            "ruleset_changed",
            version=after.version,
            events=[event_type for event_type, _, _ in events],
            token_id=principal.token_id if principal else None,
        )
        return ChangeResult(before, after, diff, applied=True)


def _find(ruleset: Ruleset, ref: str) -> Rule:
    rule = ruleset.by_id(ref) or ruleset.by_name(ref)
    if rule is None:
        raise RuleNotFoundError(f"no rule with id or name {ref!r}", rule=ref)
    return rule


def _invalid(rule: str, reason: str) -> Exception:
    return RulesetInvalidError([{"rule": rule, "condition": None, "reason": reason}])


def _duplicate(name: str) -> Exception:
    return _invalid(name, f"a rule named {name!r} already exists; names must be unique")


def _check_teams(diff: dict[str, Any], teams: set[str]) -> None:
    """Added or changed rules may only name existing teams (removals are always fine)."""
    touched = [*diff["added"], *(change["after"] for change in diff["changed"])]
    problems: list[Problem] = []
    for change in diff.get("sources", ()):
        for team in change["after"]:
            if team not in teams:
                problems.append(
                    {
                        "rule": f"source {change['token_id']}",
                        "condition": None,
                        "reason": f"unknown team {team!r} (create it first: alertyard teams)",
                    }
                )
    for rule in touched:
        for team in dict.fromkeys([rule["owner_team"], *rule["destinations"]]):
            if team not in teams:
                problems.append(
                    {
                        "rule": rule["name"],
                        "condition": None,
                        "reason": f"unknown team {team!r} (create it first: alertyard teams)",
                    }
                )
    if problems:
        raise UnknownTeamError(problems)


def _applied_event(
    operation: str, before: Ruleset, after: Ruleset
) -> tuple[str, str, dict[str, Any]]:
    diff = diff_rulesets(before, after)
    size = sum(len(diff[key]) for key in ("added", "removed", "changed"))
    if size > _MAX_EVENT_RULES:
        # Too big for one Kafka message: names, ids and a digest of the result instead.
        diff = {
            "added": [{"id": r["id"], "name": r["name"]} for r in diff["added"]],
            "removed": [{"id": r["id"], "name": r["name"]} for r in diff["removed"]],
            "changed": [{"id": c["id"], "name": c["name"]} for c in diff["changed"]],
            "moved": diff["moved"][:_MAX_EVENT_RULES],
            "sources": diff["sources"][:_MAX_EVENT_RULES],
            "truncated": True,
        }
    digest = hashlib.sha256(encode_ruleset(after.model_copy(update={"version": 0}))).hexdigest()
    data = {
        "operation": operation,
        "version_before": before.version,
        "rule_count": len(after.rules),
        "sha256": digest,
        **diff,
    }
    return ("ruleset.applied", "ruleset", data)
