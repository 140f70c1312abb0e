"""Routing decisions kept in Redis for lookup by alert id, team and time.

Layout (every key carries the retention as its TTL, refreshed on each write, and entries are
trimmed by time on each write). The decisions are spread over
:data:`shared.keyspace.DECISION_SHARDS` Redis Cluster slots by alert id; ``<shard>`` is
``alertyard:{decisions.<n>}`` (:func:`shared.keyspace.decision_tag`):

- ``<shard>:decisions``: a hash, alert id -> ``<received ms, 13 digits>`` followed by the
  decision as a compact JSON row (:func:`stored_value`). One ``HSET`` per write call, not a key
  with a TTL per decision, whose ``SET ... EX`` Redis also propagates to its AOF one by one
  (Redis CPU per decision -10-25%, memory -11%: docs/benchmarks.md, wave 9).
- ``<shard>:index:<scope>``: a sorted set used as the shard's time index; every member has score
  0 and reads ``<received ms, 13 digits>:<alert id>``, so a lexicographic range is a time range
  and a member is an exact, stable cursor. Scopes: ``all``, ``team:<team>``, ``unrouted``. A
  page reads every shard's index and merges them.
- ``<shard>:decision:<alert id>``: where routers before the hash kept a decision (a row, or
  older still the :class:`Decision` itself), each with its own TTL. Still read, never written.

Expiry follows the ``all`` index, which lists every write of a decision: each write call
deletes the hash entries of up to :data:`_EXPIRE_MAX` expired members (unless a later write of
the same alert id replaced the entry) and drops those members. A shard with no writes keeps
its entries until the hash's own TTL.

One script call per shard writes the shard's decisions and indexes: every key it touches is
declared and in the shard's slot.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Final, Literal, NamedTuple, cast

import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from shared.keyspace import DECISION_SHARDS, decision_shard, decision_tag
from shared.logging import get_logger

__all__ = [
    "Decision",
    "DecisionEncoder",
    "DecisionPage",
    "DecisionRecord",
    "DecisionStore",
    "DecisionWriter",
    "Placement",
    "decision_from_stored",
    "decision_key",
    "decisions_key",
    "index_key",
    "readable_decision",
    "records_from_rows",
    "stored_value",
]

log = get_logger(__name__)

_SCAN_CHUNK = 200


def decision_key(alert_id: str) -> str:
    return f"{decision_tag(decision_shard(alert_id))}:decision:{alert_id}"


def index_key(shard: int, scope: str) -> str:
    return f"{decision_tag(shard)}:index:{scope}"


def decisions_key(shard: int) -> str:
    """The hash of one shard's decisions."""
    return f"{decision_tag(shard)}:decisions"


_EXPIRE_MAX: Final = 1000
"""Expired decisions a write call deletes at most: a bounded amount of work per call; a
backlog of them is deleted over the next calls."""

# KEYS: every key the script touches (Redis Cluster needs them declared), all in one shard's
# slot: the decisions hash, the ``all`` index, then the other time-index keys.
# ARGV: retention_s, trim bound, the most expired decisions to delete, then ONE MessagePack array
# of rows [member, body, index-key position, ...]: redis-py packs each argument in Python
# (costly per decision), cmsgpack decodes it in C. MessagePack, not JSON: the body goes in
# unescaped (measured, 2,000 decisions a call: Redis 20-27 -> 17-20 us and the indexer 16-19
# -> 12 us per decision). A member is ``<13 digits>:<alert id>``: the id starts at byte 15.
_WRITE_SCRIPT = """
local ttl = tonumber(ARGV[1])
local cutoff = ARGV[2]
local rows = cmsgpack.unpack(ARGV[4])
local fields = {}
local by_index = {}
for _, row in ipairs(rows) do
  local member = row[1]
  fields[#fields + 1] = string.sub(member, 15)
  fields[#fields + 1] = string.sub(member, 1, 13) .. row[2]
  for k = 3, #row do
    local zargs = by_index[row[k]]
    if not zargs then
      zargs = {}
      by_index[row[k]] = zargs
    end
    zargs[#zargs + 1] = 0
    zargs[#zargs + 1] = member
  end
end
for start = 1, #fields, 1000 do
  redis.call('HSET', KEYS[1], unpack(fields, start, math.min(start + 999, #fields)))
end
redis.call('EXPIRE', KEYS[1], ttl)
local expired = redis.call('ZRANGEBYLEX', KEYS[2], '-', cutoff, 'LIMIT', 0, tonumber(ARGV[3]))
if #expired > 0 then
  local ids = {}
  for i, member in ipairs(expired) do
    ids[i] = string.sub(member, 15)
  end
  local values = redis.call('HMGET', KEYS[1], unpack(ids))
  local stale = {}
  for i, value in ipairs(values) do
    -- written at this member's time: not replaced by a later write of the same id
    if value and string.sub(value, 1, 13) == string.sub(expired[i], 1, 13) then
      stale[#stale + 1] = ids[i]
    end
  end
  if #stale > 0 then
    redis.call('HDEL', KEYS[1], unpack(stale))
  end
  redis.call('ZREM', KEYS[2], unpack(expired))
end
for position, zargs in pairs(by_index) do
  local key = KEYS[position]
  for start = 1, #zargs, 1000 do
    redis.call('ZADD', key, unpack(zargs, start, math.min(start + 999, #zargs)))
  end
  if position ~= 2 then
    redis.call('ZREMRANGEBYLEX', key, '-', cutoff)
  end
  redis.call('EXPIRE', key, ttl)
end
return #rows
"""
_ALL_POSITION: Final = 2
"""The ``all`` index's place in the script's KEYS (1-based)."""
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
    summary: str = ""
    """The alert's summary (attacker-controlled text: escape it wherever it is shown)."""
    service: str = ""
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

    def to_record(self) -> DecisionRecord:
        encoder = DecisionEncoder(self.received_at, self.routed_at, _millis(self.received_at))
        return encoder.record(
            self.alert_id,
            self.outcome,
            self.alert_status,
            self.severity,
            self.dedup_key,
            self.teams,
            self.rule_ids,
            self.ruleset_version,
            self.fallback,
            self.token_id,
            (self.source_topic, self.source_partition, self.source_offset),
            [(p.topic, p.partition, p.offset) for p in self.published],
            summary=self.summary,
            service=self.service,
        )


def scopes_for(teams: Sequence[str], outcome: str) -> tuple[str, ...]:
    """The time indexes a decision is listed in."""
    extra = ("unrouted",) if outcome == "unrouted" else ()
    return ("all", *(f"team:{t}" for t in teams), *extra)


class DecisionRecord(NamedTuple):
    """A decision ready to write: its index member, scopes and stored value (see
    :func:`stored_value`; values written before it are a :class:`Decision` as JSON)."""

    alert_id: str
    member: str
    scopes: tuple[str, ...]
    body: str


_dumps: Callable[[Any], bytes] = orjson.dumps

_STAMP_DIGITS: Final = 13
"""The received time in ms at the start of a hash entry, as in an index member."""

PUBLISHED: Final = 15
"""The column of a decision row that says where its copies went."""


def stored_value(received_at: str, routed_at: str, row: Sequence[Any]) -> str:
    """What Redis keeps for one decision: ``[received_at, routed_at, row]`` as JSON, where the
    row is laid out as ``batch-v2``'s (services/router/decision_batch.py) with column
    :data:`PUBLISHED` holding ``[topic, partition, offset]`` per copy.

    A row, not the JSON of a :class:`Decision`: the indexer builds one per alert, and a row
    costs it a third of the time and Redis half the bytes (docs/benchmarks.md, wave 7).
    Lookups, which are rare, turn it into a :class:`Decision`.
    """
    # Text, not bytes: the write script's MessagePack decoder (cmsgpack) has no bin type.
    return _dumps([received_at, routed_at, row]).decode()


def decision_from_stored(raw: bytes | str) -> Decision:
    """The :class:`Decision` of a stored value: a hash entry (the received ms, then a row), a
    row (:func:`stored_value`) or, written by routers before rows, a :class:`Decision`'s JSON."""
    if raw[:1].isdigit():
        raw = raw[_STAMP_DIGITS:]
    if raw[:1] in (b"{", "{"):
        return Decision.model_validate_json(raw)
    received_at, routed_at, row = orjson.loads(raw)
    (
        alert_id,
        outcome,
        status,
        severity,
        dedup_key,
        summary,
        service,
        teams,
        rule_ids,
        version,
        fallback,
        token_id,
        topic,
        partition,
        offset,
        published,
    ) = row
    return Decision(
        alert_id=alert_id,
        outcome=outcome,
        alert_status=status,
        severity=severity,
        dedup_key=alert_id if dedup_key is None else dedup_key,
        summary=summary,
        service=service,
        teams=teams,
        rule_ids=rule_ids,
        ruleset_version=version,
        fallback=fallback,
        token_id=token_id,
        received_at=received_at,
        routed_at=routed_at,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        published=tuple(Placement(topic=t, partition=p, offset=o) for t, p, o in published),
    )


def readable_decision(raw: bytes | str) -> Decision | None:
    """:func:`decision_from_stored`, or None (logged) for a value it cannot read: one damaged
    value must not fail every page that lists it."""
    try:
        return decision_from_stored(raw)
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        log.error("decision_value_unreadable", error=type(exc).__name__)
        return None


class DecisionEncoder:
    """Builds the :class:`DecisionRecord` of many alerts that share their batch's times.

    The hot path writes one record per alert: the batch's times are formatted once and the
    scopes of each (teams, outcome) are derived once.
    """

    __slots__ = ("_member_prefix", "_received", "_routed", "_scopes")

    def __init__(
        self, received_at: datetime | str, routed_at: datetime | str, received_ms: int
    ) -> None:
        self._received = _iso(received_at)
        self._routed = _iso(routed_at)
        self._member_prefix = f"{received_ms:013d}:"
        self._scopes: dict[tuple[tuple[str, ...], str], tuple[str, ...]] = {}

    def record(
        self,
        alert_id: str,
        outcome: str,
        alert_status: str,
        severity: str,
        dedup_key: str,
        teams: tuple[str, ...],
        rule_ids: tuple[str, ...],
        ruleset_version: int,
        fallback: bool,
        token_id: str,
        source: tuple[str, int, int],
        published: Iterable[tuple[str, int, int]],
        *,
        summary: str = "",
        service: str = "",
    ) -> DecisionRecord:
        return self.from_row(
            [
                alert_id,
                outcome,
                alert_status,
                severity,
                None if dedup_key == alert_id else dedup_key,  # the common case: the id
                summary,
                service,
                teams,
                rule_ids,
                ruleset_version,
                fallback,
                token_id,
                *source,
                [(t, p, o) for t, p, o in published],  # orjson writes no NamedTuple
            ]
        )

    def from_row(self, row: Sequence[Any]) -> DecisionRecord:
        """The record of a row laid out as :func:`stored_value` says."""
        alert_id, outcome, teams = row[0], row[1], row[7]
        key = (tuple(teams), outcome)
        scopes = self._scopes.get(key)
        if scopes is None:
            scopes = self._scopes[key] = scopes_for(teams, outcome)
        value = stored_value(self._received, self._routed, row)
        member = self._member_prefix + alert_id
        return _new_record(DecisionRecord, (alert_id, member, scopes, value))


_RecordFields = tuple[str, str, tuple[str, ...], str]
_new_record: Callable[[type[DecisionRecord], _RecordFields], DecisionRecord]
_new_record = tuple.__new__  # a NamedTuple's own __new__ costs 0.5 us


def records_from_rows(rows: Iterable[Sequence[Any]]) -> list[DecisionRecord]:
    """Records from ``[alert id, member, scopes, body]`` rows (``batch-v1``: bodies are JSON
    text)."""
    new = _new_record
    return [new(DecisionRecord, (a, m, tuple(s), b)) for a, m, s, b in rows]


def _iso(moment: datetime | str) -> str:
    # A batch shares its times: callers may pass them formatted once (ISO 8601).
    return moment if isinstance(moment, str) else moment.isoformat()


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
        self._write = redis.register_script(_WRITE_SCRIPT)  # EVALSHA, reloaded if flushed

    async def write_many(self, decisions: Sequence[DecisionRecord]) -> None:
        """Write a batch of decisions in one round trip: one script call per shard.

        A pipeline of SET + ZADD per decision costs redis-py a command to pack and a reply to
        parse each; one script call with one JSON argument per shard keeps the hot path cheap.
        Idempotent: writing a decision again rewrites the same keys and index members.
        """
        if not decisions:
            return
        cutoff = f"({int((time.time() - self._retention_s) * 1000):013d}"
        by_shard: dict[int, list[DecisionRecord]] = {}
        for record in decisions:
            by_shard.setdefault(decision_shard(record.alert_id), []).append(record)
        async with self._redis.pipeline(transaction=False) as pipe:
            for shard, records in by_shard.items():
                keys, rows = _script_call(shard, records)
                args: list[int | str | bytes] = [self._retention_s, cutoff, _EXPIRE_MAX, rows]
                await self._write(keys=keys, args=args, client=pipe)
            await pipe.execute()

    async def get(self, alert_id: str) -> Decision | None:
        return (await self.get_many([alert_id]))[0]

    async def get_many(self, alert_ids: Sequence[str]) -> list[Decision | None]:
        """The decisions of ``alert_ids`` in their order (None where there is none): from the
        shard's hash, else from the key routers before it wrote."""
        if not alert_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for alert_id in alert_ids:
                pipe.hget(decisions_key(decision_shard(alert_id)), alert_id)
                pipe.get(decision_key(alert_id))
            raws = cast(list[bytes | None], await pipe.execute())
        found = (current if current is not None else older for current, older in _pairs(raws))
        return [None if raw is None else readable_decision(raw) for raw in found]

    async def page(
        self,
        *,
        scope: str,
        limit: int,
        cursor: str | None = None,
        since: datetime | None = None,
        status: str | None = None,
        outcome: str | None = None,
        severity: str | None = None,
    ) -> DecisionPage:
        """Newest first. ``status`` / ``outcome`` / ``severity`` filter after the index read, in
        bounded chunks, so a page may hold fewer than ``limit`` items while ``next_cursor`` is
        set."""
        upper = f"({decode_cursor(cursor)}" if cursor else "+"
        lower = f"[{_millis(since):013d}" if since else "-"
        items: list[Decision] = []
        last_member: str | None = None
        exhausted = False
        for _ in range(_SCAN_ROUNDS):
            filtered = status or outcome or severity
            chunk = max(limit - len(items), 1) if not filtered else _SCAN_CHUNK
            members = await self._members(scope, upper, lower, chunk)
            if len(members) < chunk:
                exhausted = True
            decisions = await self._load(members)
            for member, decision in decisions:
                last_member = member
                if decision is None or not _matches(decision, status, outcome, severity):
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

    async def _members(self, scope: str, upper: str, lower: str, num: int) -> list[str]:
        """The newest ``num`` index members in ``(lower, upper)`` over every shard."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for shard in range(DECISION_SHARDS):
                pipe.zrevrangebylex(index_key(shard, scope), upper, lower, start=0, num=num)
            replies = cast(list[list[bytes]], await pipe.execute())
        newest_first = heapq.merge(*([m.decode() for m in r] for r in replies), reverse=True)
        return list(itertools.islice(newest_first, num))

    async def _load(self, members: list[str]) -> list[tuple[str, Decision | None]]:
        decisions = await self.get_many([m.partition(":")[2] for m in members])
        return list(zip(members, decisions, strict=True))


def _script_call(shard: int, records: Sequence[DecisionRecord]) -> tuple[list[str], bytes]:
    """The KEYS and the rows argument of one shard's write script call."""
    keys = [decisions_key(shard), index_key(shard, "all")]
    positions = {"all": _ALL_POSITION}  # scope -> its index key's position in KEYS (1-based)
    tails: dict[tuple[str, ...], list[int]] = {}
    rows = []
    for record in records:
        tail = tails.get(record.scopes)
        if tail is None:
            for scope in record.scopes:
                if scope not in positions:
                    keys.append(index_key(shard, scope))
                    positions[scope] = len(keys)
            tail = tails[record.scopes] = [positions[s] for s in record.scopes]
        rows.append([record.member, record.body, *tail])
    return keys, _msgpack(rows)


_msgpack: Callable[[Any], bytes] = msgspec.msgpack.Encoder().encode


def _pairs(values: list[bytes | None]) -> Iterable[tuple[bytes | None, bytes | None]]:
    it = iter(values)
    return zip(it, it, strict=True)


def _matches(
    decision: Decision, status: str | None, outcome: str | None, severity: str | None
) -> bool:
    if status and decision.alert_status != status:
        return False
    if severity and decision.severity != severity:
        return False
    return not (outcome and decision.outcome != outcome)


class DecisionWriter:
    """Writes decisions to Redis in the background, one script call per batch of them.

    Routing never waits for it: the batch's offsets are committed once Kafka acknowledged
    every copy. While Redis is unreachable, decisions wait in a bounded buffer (the oldest are
    dropped past ``max_buffered``, counted in ``dropped``) and are written once Redis answers
    again. The alerts themselves are in Kafka: only the lookup record is at stake.
    """

    def __init__(
        self,
        store: DecisionStore,
        *,
        max_buffered: int,
        timeout_s: float = 2.0,
        max_write: int = 2000,
    ) -> None:
        self._store = store
        self._buffer: deque[DecisionRecord] = deque()
        self._writing: list[DecisionRecord] = []
        self._max = max_buffered
        self._timeout_s = timeout_s
        self._max_write = max_write
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        self.written = 0

    @property
    def buffered(self) -> int:
        """Decisions not yet written: waiting, plus the batch being written now."""
        return len(self._buffer) + len(self._writing)

    def add(self, decisions: Iterable[DecisionRecord]) -> None:
        self._buffer.extend(decisions)
        self._trim()
        self._wakeup.set()

    def _trim(self) -> None:
        """Drop the oldest waiting decisions beyond ``max_buffered``. The batch being written is
        out of the buffer (at most ``max_write`` more in memory) and is never dropped while the
        write may still succeed."""
        while len(self._buffer) > self._max:
            self._buffer.popleft()
            self.dropped += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="decision-writer")

    async def stop(self, *, flush_timeout_s: float = 5.0) -> None:
        """Stop the background task, then try once more to write what is left."""
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), timeout=flush_timeout_s)

    async def flush(self) -> bool:
        """Write up to ``max_write`` buffered decisions, oldest first; False when Redis did not
        answer (they go back to the front of the buffer)."""
        if not self._buffer:
            return True
        # Take the batch out of the buffer first: decisions added (and overflow dropped) while
        # the write is in flight then touch only the buffer, never the batch being written.
        count = min(len(self._buffer), self._max_write)
        self._writing = [self._buffer.popleft() for _ in range(count)]
        try:
            await asyncio.wait_for(self._store.write_many(self._writing), timeout=self._timeout_s)
        except BaseException as exc:
            self._buffer.extendleft(reversed(self._writing))
            self._writing = []
            self._trim()
            if not isinstance(exc, Exception):
                raise  # cancelled: the decisions are back in the buffer for stop() to drain
            log.warning("decision_store_unavailable", error=repr(exc), buffered=self.buffered)
            return False
        self.written += len(self._writing)
        self._writing = []
        return True

    async def _drain(self) -> None:
        while self._buffer and await self.flush():
            pass

    async def _run(self) -> None:
        backoff = 0.1
        while not self._stopping:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._buffer and not self._stopping:
                if await self.flush():
                    backoff = 0.1
                    continue
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
