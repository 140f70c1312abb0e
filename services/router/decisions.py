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
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Literal, NamedTuple, cast

from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from shared.logging import get_logger

__all__ = [
    "Decision",
    "DecisionEncoder",
    "DecisionPage",
    "DecisionRecord",
    "DecisionStore",
    "DecisionWriter",
    "Placement",
]

log = get_logger(__name__)

_PREFIX = "alertyard:decision:"
_INDEX = "alertyard:decisions:"
_SCAN_CHUNK = 200

# ARGV: retention_s, trim bound, decision key prefix, index key prefix, then ONE JSON array of
# rows [member, body, scope, ...]: redis-py packs each argument in Python (costly per decision),
# cjson decodes the array in C.
_WRITE_SCRIPT = """
local ttl = tonumber(ARGV[1])
local cutoff = ARGV[2]
local prefix = ARGV[3]
local index = ARGV[4]
local rows = cjson.decode(ARGV[5])
local by_scope = {}
for _, row in ipairs(rows) do
  local member = row[1]
  -- member = <received ms>:<alert id>
  local id = string.sub(member, string.find(member, ':', 1, true) + 1)
  redis.call('SET', prefix .. id, row[2], 'EX', ttl)
  for k = 3, #row do
    local zargs = by_scope[row[k]]
    if not zargs then
      zargs = {}
      by_scope[row[k]] = zargs
    end
    zargs[#zargs + 1] = 0
    zargs[#zargs + 1] = member
  end
end
for scope, zargs in pairs(by_scope) do
  local key = index .. scope
  for start = 1, #zargs, 1000 do
    redis.call('ZADD', key, unpack(zargs, start, math.min(start + 999, #zargs)))
  end
  redis.call('ZREMRANGEBYLEX', key, '-', cutoff)
  redis.call('EXPIRE', key, ttl)
end
return #rows
"""
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
        return DecisionRecord(
            alert_id=self.alert_id,
            member=f"{_millis(self.received_at):013d}:{self.alert_id}",
            scopes=scopes_for(self.teams, self.outcome),
            body=self.model_dump_json(),
        )


def scopes_for(teams: Sequence[str], outcome: str) -> tuple[str, ...]:
    """The time indexes a decision is listed in."""
    extra = ("unrouted",) if outcome == "unrouted" else ()
    return ("all", *(f"team:{t}" for t in teams), *extra)


class DecisionRecord(NamedTuple):
    """A decision ready to write: its index member, scopes and JSON (a :class:`Decision`)."""

    alert_id: str
    member: str
    scopes: tuple[str, ...]
    body: str


_json_str: Callable[[str], str] = json.encoder.encode_basestring_ascii
"""A JSON string literal, exactly as ``json.dumps`` writes it (the C implementation)."""

_BODY = (
    '{"alert_id":%s,"outcome":%s,"alert_status":%s,"severity":%s,"dedup_key":%s,"summary":%s,'
    '"service":%s,"teams":%s,'
    '"rule_ids":%s,"ruleset_version":%d,"fallback":%s,"token_id":%s,"received_at":%s,'
    '"routed_at":%s,"source_topic":%s,"source_partition":%d,"source_offset":%d,"published":[%s]}'
)
_PLACEMENT = '{"topic":%s,"partition":%d,"offset":%d}'


class DecisionEncoder:
    """Builds the :class:`DecisionRecord` of many alerts that share their batch's times.

    The hot path writes one record per alert, so the body is filled into a template (the JSON
    of a :class:`Decision`; a unit test holds them equal) and the parts that repeat within a
    batch (teams, rule ids, token id, topics, enum values) are encoded once.
    """

    __slots__ = ("_json", "_lists", "_member_prefix", "_received", "_routed", "_scopes")

    def __init__(
        self, received_at: datetime | str, routed_at: datetime | str, received_ms: int
    ) -> None:
        self._received = _json_str(_iso(received_at))
        self._routed = _json_str(_iso(routed_at))
        self._member_prefix = f"{received_ms:013d}:"
        self._json: dict[str, str] = {}
        self._lists: dict[tuple[str, ...], str] = {}
        self._scopes: dict[tuple[tuple[str, ...], str], tuple[str, ...]] = {}

    def _str(self, text: str) -> str:
        found = self._json.get(text)
        if found is None:
            found = self._json[text] = _json_str(text)
        return found

    def _list(self, items: tuple[str, ...]) -> str:
        found = self._lists.get(items)
        if found is None:
            found = self._lists[items] = "[" + ",".join(map(_json_str, items)) + "]"
        return found

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
        text = self._str
        quoted_id = _json_str(alert_id)
        body = _BODY % (
            quoted_id,
            text(outcome),
            text(alert_status),
            text(severity),
            quoted_id if dedup_key == alert_id else _json_str(dedup_key),
            _json_str(summary),
            text(service),
            self._list(teams),
            self._list(rule_ids),
            ruleset_version,
            "true" if fallback else "false",
            text(token_id),
            self._received,
            self._routed,
            text(source[0]),
            source[1],
            source[2],
            ",".join([_PLACEMENT % (text(t), p, o) for t, p, o in published]),
        )
        scopes = self._scopes.get((teams, outcome))
        if scopes is None:
            scopes = self._scopes[teams, outcome] = scopes_for(teams, outcome)
        return DecisionRecord(alert_id, self._member_prefix + alert_id, scopes, body)


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
        """Write a batch of decisions in one round trip and one command (a Lua script).

        A pipeline of SET + ZADD per decision costs redis-py a command to pack and a reply to
        parse each; one script call with one JSON argument per batch keeps the hot path cheap.
        """
        if not decisions:
            return
        cutoff = f"({int((time.time() - self._retention_s) * 1000):013d}"
        scopes: dict[tuple[str, ...], str] = {}
        rows = []
        for record in decisions:
            tail = scopes.get(record.scopes)
            if tail is None:
                tail = scopes[record.scopes] = "".join("," + _json_str(s) for s in record.scopes)
            rows.append(f"[{_json_str(record.member)},{_json_str(record.body)}{tail}]")
        await self._write(
            keys=[], args=[self._retention_s, cutoff, _PREFIX, _INDEX, "[" + ",".join(rows) + "]"]
        )

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
            members = cast(
                list[bytes],
                await self._redis.zrevrangebylex(_INDEX + scope, upper, lower, start=0, num=chunk),
            )
            if len(members) < chunk:
                exhausted = True
            decisions = await self._load([m.decode() for m in members])
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

    async def _load(self, members: list[str]) -> list[tuple[str, Decision | None]]:
        if not members:
            return []
        ids = [m.partition(":")[2] for m in members]
        raws = cast(list[bytes | None], await self._redis.mget([_PREFIX + i for i in ids]))
        return [
            (member, None if raw is None else Decision.model_validate_json(raw))
            for member, raw in zip(members, raws, strict=True)
        ]


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
        return len(self._buffer)

    def add(self, decisions: Iterable[DecisionRecord]) -> None:
        self._buffer.extend(decisions)
        while len(self._buffer) > self._max:
            self._buffer.popleft()
            self.dropped += 1
        self._wakeup.set()

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
        """Write up to ``max_write`` buffered decisions; False when Redis did not answer."""
        if not self._buffer:
            return True
        pending = [self._buffer[i] for i in range(min(len(self._buffer), self._max_write))]
        try:
            await asyncio.wait_for(self._store.write_many(pending), timeout=self._timeout_s)
        except Exception as exc:  # Redis down or slow: keep the decisions for the next try
            log.warning("decision_store_unavailable", error=repr(exc), buffered=len(self._buffer))
            return False
        for _ in range(len(pending)):
            self._buffer.popleft()
        self.written += len(pending)
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
