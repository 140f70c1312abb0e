"""Routing decisions kept in Redis for lookup by alert id, team and time.

Layout (every key carries the retention as its TTL or is trimmed by time on each write):

- ``alertyard:decision:<alert id>``: the decision as JSON.
- ``alertyard:decisions:<scope>``: a sorted set used as a time index; every member has score 0
  and reads ``<received ms, 13 digits>:<alert id>``, so a lexicographic range is a time range
  and a member is an exact, stable cursor. Scopes: ``all``, ``team:<team>``, ``unrouted``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Literal, cast

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from shared.logging import get_logger

__all__ = ["Decision", "DecisionPage", "DecisionStore", "DecisionWriter", "Placement"]

log = get_logger(__name__)

_PREFIX = "alertyard:decision:"
_INDEX = "alertyard:decisions:"
_SCAN_CHUNK = 200
_SCAN_ROUNDS = 10


class Placement(BaseModel):
    """Where one copy of the alert was published."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int


class Decision(BaseModel):
    """What the router did with one alert."""

    model_config = ConfigDict(frozen=True)

    alert_id: str
    outcome: Literal["routed", "unrouted"]
    alert_status: str
    """``firing`` or ``resolved``: the alert's own status."""
    severity: str
    dedup_key: str
    teams: tuple[str, ...]
    rule_ids: tuple[str, ...]
    ruleset_version: int
    fallback: bool
    """True when only the fallback caught the alert."""
    token_id: str
    """The producer's token id (never the secret)."""
    received_at: datetime
    """When the router consumed the alert."""
    routed_at: datetime
    """When Kafka acknowledged every copy."""
    source_topic: str
    source_partition: int
    source_offset: int
    published: tuple[Placement, ...] = ()

    def scopes(self) -> list[str]:
        scopes = ["all"] + [f"team:{t}" for t in self.teams]
        if self.outcome == "unrouted":
            scopes.append("unrouted")
        return scopes

    def index_member(self) -> str:
        return f"{_millis(self.received_at):013d}:{self.alert_id}"


class DecisionPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: tuple[Decision, ...]
    next_cursor: str | None = Field(default=None)
    """Pass as ``cursor`` to get the next (older) page; None on the last page."""


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def encode_cursor(member: str) -> str:
    return base64.urlsafe_b64encode(member.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Raises ``ValueError`` on a cursor this API did not hand out."""
    padded = cursor + "=" * (-len(cursor) % 4)
    member = base64.urlsafe_b64decode(padded.encode()).decode()
    stamp, sep, _ = member.partition(":")
    if not sep or len(stamp) != 13 or not stamp.isdigit():
        raise ValueError("malformed cursor")
    return member


class DecisionStore:
    def __init__(self, redis: Redis, *, retention_s: int) -> None:
        self._redis = redis
        self._retention_s = retention_s

    async def write_many(self, decisions: Sequence[Decision]) -> None:
        """Write a batch of decisions in one pipelined round trip."""
        if not decisions:
            return
        cutoff = f"({int((time.time() - self._retention_s) * 1000):013d}"
        scopes: set[str] = set()
        async with self._redis.pipeline(transaction=False) as pipe:
            for decision in decisions:
                pipe.set(
                    _PREFIX + decision.alert_id, decision.model_dump_json(), ex=self._retention_s
                )
                member = decision.index_member()
                for scope in decision.scopes():
                    pipe.zadd(_INDEX + scope, {member: 0})
                    scopes.add(scope)
            for scope in scopes:
                pipe.zremrangebylex(_INDEX + scope, "-", cutoff)
                pipe.expire(_INDEX + scope, self._retention_s)
            await pipe.execute()

    async def get(self, alert_id: str) -> Decision | None:
        raw = cast(bytes | None, await self._redis.get(_PREFIX + alert_id))
        return None if raw is None else Decision.model_validate_json(raw)

    async def page(
        self,
        *,
        scope: str,
        limit: int,
        cursor: str | None = None,
        since: datetime | None = None,
        status: str | None = None,
        outcome: str | None = None,
    ) -> DecisionPage:
        """Newest first. ``status`` / ``outcome`` filter after the index read, in bounded
        chunks, so a page may hold fewer than ``limit`` items while ``next_cursor`` is set."""
        upper = f"({decode_cursor(cursor)}" if cursor else "+"
        lower = f"[{_millis(since):013d}" if since else "-"
        items: list[Decision] = []
        last_member: str | None = None
        exhausted = False
        for _ in range(_SCAN_ROUNDS):
            chunk = max(limit - len(items), 1) if not (status or outcome) else _SCAN_CHUNK
            members = cast(
                list[bytes],
                await self._redis.zrevrangebylex(_INDEX + scope, upper, lower, start=0, num=chunk),
            )
            if len(members) < chunk:
                exhausted = True
            decisions = await self._load([m.decode() for m in members])
            for member, decision in decisions:
                last_member = member
                if decision is None or not _matches(decision, status, outcome):
                    continue
                items.append(decision)
                if len(items) == limit:
                    break
            if len(items) == limit or exhausted or last_member is None:
                break
            upper = f"({last_member}"
        if len(items) == limit and last_member is not None:
            exhausted = False
        next_cursor = None if exhausted or last_member is None else encode_cursor(last_member)
        return DecisionPage(items=tuple(items), next_cursor=next_cursor)

    async def _load(self, members: list[str]) -> list[tuple[str, Decision | None]]:
        if not members:
            return []
        ids = [m.partition(":")[2] for m in members]
        raws = cast(list[bytes | None], await self._redis.mget([_PREFIX + i for i in ids]))
        return [
            (member, None if raw is None else Decision.model_validate_json(raw))
            for member, raw in zip(members, raws, strict=True)
        ]


def _matches(decision: Decision, status: str | None, outcome: str | None) -> bool:
    if status and decision.alert_status != status:
        return False
    return not (outcome and decision.outcome != outcome)


class DecisionWriter:
    """Buffers decisions and writes them per batch; never holds routing up.

    While Redis is unreachable, decisions wait in a bounded buffer (the oldest are dropped past
    ``max_buffered``, counted in ``dropped``) and are written once Redis answers again. The
    alerts themselves are already in Kafka: only the lookup record is at stake.
    """

    def __init__(self, store: DecisionStore, *, max_buffered: int, timeout_s: float = 2.0) -> None:
        self._store = store
        self._buffer: deque[Decision] = deque()
        self._max = max_buffered
        self._timeout_s = timeout_s
        self.dropped = 0
        self._failing_since: float | None = None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def add(self, decisions: Iterable[Decision]) -> None:
        self._buffer.extend(decisions)
        while len(self._buffer) > self._max:
            self._buffer.popleft()
            self.dropped += 1

    async def flush(self) -> bool:
        """Write what is buffered; False (and everything kept) when Redis did not answer."""
        if not self._buffer:
            return True
        now = time.monotonic()
        if self._failing_since is not None and now - self._failing_since < 0.5:
            return False  # do not pay a timeout on every batch during an outage
        pending = list(self._buffer)
        try:
            await asyncio.wait_for(self._store.write_many(pending), timeout=self._timeout_s)
        except Exception as exc:  # Redis down or slow: keep the decisions for the next try
            if self._failing_since is None:
                log.warning("decision_store_unavailable", error=repr(exc), buffered=len(pending))
            self._failing_since = now
            return False
        for _ in range(len(pending)):
            self._buffer.popleft()
        if self._failing_since is not None:
            log.info("decision_store_recovered", written=len(pending))
            self._failing_since = None
        return True
