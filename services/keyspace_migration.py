"""Moves the keys of a Redis written before the Redis Cluster key design (#14) to their names.

Before, tokens, users, teams, rules and the outbox had names without a common hash tag
(``alertyard:token:<id>``, ``alertyard:teams``, ``alertyard:outbox:{tokens}`` ...) and the
decisions one slot per key. Now the control plane shares :data:`shared.keyspace.CONTROL` and the
decisions are sharded (:mod:`shared.keyspace`). :func:`migrate_keyspace` runs at the start of
the tokens service and the router, before either serves: the first run renames the
control-plane keys (TTLs kept) and sets a marker; every later run only reads the marker.
:func:`migrate_decisions` (the router) rewrites old decisions into their shards the same way
(their retention starts again). Runs at once by several processes are safe (each key moves
once; a key already taken by another run is skipped).

Legacy keys are renamed only on a Redis that is not a cluster (they are in different slots);
a cluster never held them, since the old transactions could not run there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from services.router.decisions import DecisionStore, decision_from_stored
from services.rules.control.store import RulesKeys
from shared.keyspace import CONTROL
from shared.logging import get_logger
from shared.outbox import outbox_keys
from shared.teams import TEAMS_KEY
from shared.tokens import keys

__all__ = ["MARKER", "migrate_at_start", "migrate_decisions", "migrate_keyspace"]

log = get_logger(__name__)

MARKER: Final = f"{CONTROL}:keyspace"
"""Set once the control-plane keys are in the cluster-safe layout (value: the layout's version)."""
DECISIONS_MARKER: Final = f"{MARKER}:decisions"
_VERSION: Final = b"2"
_LEGACY: Final = "alertyard:"
_RULES = RulesKeys()
_RENAMED: Final = {
    f"{_LEGACY}tokens": keys.TOKENS,
    f"{_LEGACY}token_expiry": keys.EXPIRY_INDEX,
    f"{_LEGACY}users": keys.USERS,
    f"{_LEGACY}bootstrapped": keys.BOOTSTRAPPED,
    f"{_LEGACY}teams": TEAMS_KEY,
    f"{_LEGACY}rules:current": _RULES.current,
    f"{_LEGACY}rules:version": _RULES.version,
}
"""Legacy name -> name, for the keys with a fixed name."""
_PREFIXES: Final = {
    f"{_LEGACY}token:": keys.token_key(""),  # also <id>:last_used
    f"{_LEGACY}token_ref:": keys.token_ref_key(""),
    f"{_LEGACY}user:": keys.user_key(""),
    f"{_LEGACY}user_email:": keys.user_email_key(""),
}
"""Legacy prefix -> prefix, for the keys named after a record."""
_OUTBOX: Final = f"{_LEGACY}outbox:{{"
_OUTBOX_PARTS: Final = {"": "stream", ":seq": "seq", ":lease": "lease", ":fence": "fence"}
_DECISION: Final = f"{_LEGACY}decision:"
_DECISION_INDEX: Final = f"{_LEGACY}decisions:"


async def migrate_at_start(redis: Redis, decisions: DecisionStore | None = None) -> None:
    """What a service runs before it serves: the control-plane keys, and the decisions when
    given their store. Redis unreachable: logged and left for the next start (the marker is
    not set), so a Redis outage does not keep the service from starting."""
    try:
        await migrate_keyspace(redis)
        if decisions is not None:
            await migrate_decisions(redis, decisions)
    except RedisError as exc:
        log.warning("keyspace_migration_deferred", error=type(exc).__name__)


async def migrate_keyspace(redis: Redis) -> int:
    """Move every legacy control-plane key (once per Redis); returns how many moved."""
    if await redis.get(MARKER) == _VERSION:
        return 0
    moved = 0
    async for legacy in _scan(redis, f"{_LEGACY}*"):
        target = _target(legacy)
        if target is not None and await _rename(redis, legacy, target):
            moved += 1
    await redis.set(MARKER, _VERSION)
    if moved:
        log.info("keyspace_migrated", keys=moved)
    return moved


async def migrate_decisions(redis: Redis, store: DecisionStore) -> int:
    """Rewrite every legacy decision into its shard (once per Redis); returns how many."""
    if await redis.get(DECISIONS_MARKER) == _VERSION:
        return 0
    rewritten = await _rewrite_decisions(redis, store)
    await redis.set(DECISIONS_MARKER, _VERSION)
    if rewritten:
        log.info("decisions_migrated", decisions=rewritten)
    return rewritten


def _target(legacy: str) -> str | None:
    """The name of a legacy control-plane key; None for any other key."""
    if legacy in _RENAMED:
        return _RENAMED[legacy]
    if legacy.startswith(_OUTBOX) and "}" in legacy:
        source, _, part = legacy[len(_OUTBOX) :].partition("}")
        field = _OUTBOX_PARTS.get(part)
        return None if field is None else cast(str, getattr(outbox_keys(source), field))
    for old, new in _PREFIXES.items():
        if legacy.startswith(old):
            return new + legacy[len(old) :]
    return None


async def _rename(redis: Redis, legacy: str, target: str) -> bool:
    try:
        if await redis.renamenx(legacy, target):
            return True
    except ResponseError:  # moved by a concurrent run meanwhile
        return False
    log.warning("keyspace_legacy_key_kept", key=legacy, reason="its new name is taken")
    return False


async def _rewrite_decisions(redis: Redis, store: DecisionStore, chunk: int = 500) -> int:
    """Decisions into their shards (indexes rebuilt from the records), then the legacy keys go."""
    rewritten = 0
    batch: list[str] = []
    async for legacy in _scan(redis, f"{_DECISION}*"):
        batch.append(legacy)
        if len(batch) >= chunk:
            rewritten += await _rewrite(redis, store, batch)
            batch = []
    rewritten += await _rewrite(redis, store, batch)
    async for index in _scan(redis, f"{_DECISION_INDEX}*"):
        await redis.delete(index)
    return rewritten


async def _rewrite(redis: Redis, store: DecisionStore, legacy: list[str]) -> int:
    if not legacy:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for key in legacy:
            pipe.get(key)
        bodies = cast(list[bytes | None], await pipe.execute())
    records = [decision_from_stored(b).to_record() for b in bodies if b is not None]
    await store.write_many(records)
    async with redis.pipeline(transaction=False) as pipe:
        for key in legacy:
            pipe.delete(key)
        await pipe.execute()
    return len(records)


async def _scan(redis: Redis, pattern: str) -> AsyncIterator[str]:
    async for key in redis.scan_iter(match=pattern, count=1000):
        yield key.decode() if isinstance(key, bytes) else str(key)
