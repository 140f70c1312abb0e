"""Find records by actor, token id, type, subject and time, a page at a time.

Pages run in seq order; the cursor is the seq of the last record returned, so a page is stable
however much is appended meanwhile. Sealed segments whose summary (:mod:`services.audit.
summaries`) rules the query out are skipped unread; in the others, filters on strings are first
checked as byte substrings of the canonical line (cheap), and only lines that may match are
parsed.
"""

from __future__ import annotations

import bisect
import json
import re
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.audit.errors import InvalidCursorError
from services.audit.segments import complete_lines, list_segments
from services.audit.summaries import SegmentSummaries, summary_keys
from shared.events import Event

__all__ = ["AuditPage", "AuditQuery", "AuditRecord", "query_log"]


class AuditQuery(BaseModel):
    """Filters; every one that is set must match."""

    model_config = ConfigDict(frozen=True)

    actor: str | None = None
    """The acting user id (``event.actor.user_id``)."""
    token_id: str | None = None
    """A token the event was made with (``actor.token_id``) or is about (``token/<id>``)."""
    type: str | None = None
    """Event type, e.g. ``token.created``."""
    subject: str | None = None
    since: datetime | None = None
    """Event time at or after this instant."""
    until: datetime | None = None
    """Event time before this instant."""

    @field_validator("since", "until")
    @classmethod
    def _utc_when_naive(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is taken as UTC (event times are UTC)."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class AuditRecord(BaseModel):
    """One record of the log as an API returns it."""

    model_config = ConfigDict(frozen=True)

    seq: int
    hash: str
    prev_hash: str
    event: Event


class AuditPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    records: list[AuditRecord]
    next_cursor: str | None = Field(
        description="Pass as ``cursor`` for the next page; null when there is none."
    )


def query_log(
    directory: Path,
    query: AuditQuery,
    *,
    cursor: str | None = None,
    limit: int = 100,
    summaries: SegmentSummaries | None = None,
) -> AuditPage:
    """Up to ``limit`` records after ``cursor`` that match ``query``, in seq order.

    With ``summaries``, a sealed segment whose summary rules the query out is not read.
    """
    after = _parse_cursor(cursor)
    needles = _needles(query)
    keys = _summary_keys(query)
    timed = query.since is not None or query.until is not None
    segments = list_segments(directory)
    firsts = [first for first, _ in segments]
    start = max(bisect.bisect_right(firsts, after + 1) - 1, 0)
    found: list[AuditRecord] = []
    for index, (first_seq, path) in enumerate(segments[start:], start=start):
        if summaries is not None and (keys or timed) and index < len(segments) - 1:
            summary = summaries.get(path)
            if not summary.may_overlap(query.since, query.until) or not all(
                any(summary.may_hold(key) for key in options) for options in keys
            ):
                continue
        lines = complete_lines(path.read_bytes())
        for line in lines[max(after + 1 - first_seq, 0) :]:
            if not all(any(n in line for n in options) for options in needles):
                continue
            doc = json.loads(line)
            if doc["seq"] <= after:
                continue
            record = AuditRecord.model_validate(doc)
            if _matches(record.event, query):
                found.append(record)
                if len(found) >= limit:
                    return AuditPage(records=found, next_cursor=str(record.seq))
    return AuditPage(records=found, next_cursor=None)


_CURSOR_RE = re.compile(r"[0-9]{1,20}")


def _parse_cursor(cursor: str | None) -> int:
    if cursor is None or cursor == "":
        return 0
    if not _CURSOR_RE.fullmatch(cursor):  # str.isdigit() takes "²", which int() refuses
        raise InvalidCursorError("cursor must be a value returned as next_cursor")
    return int(cursor)


def _needles(query: AuditQuery) -> list[list[bytes]]:
    """Byte strings a matching canonical line must contain (one of each inner list)."""

    def member(key: str, value: str) -> bytes:
        return f'"{key}":{json.dumps(value, ensure_ascii=False)}'.encode()

    needles = []
    if query.actor is not None:
        needles.append([member("user_id", query.actor)])
    if query.token_id is not None:
        needles.append(
            [member("token_id", query.token_id), member("subject", f"token/{query.token_id}")]
        )
    if query.type is not None:
        needles.append([member("type", query.type)])
    if query.subject is not None:
        needles.append([member("subject", query.subject)])
    return needles


def _summary_keys(query: AuditQuery) -> list[list[bytes]]:
    """What a segment's summary must (maybe) hold for the segment to match: one of each."""
    keys = []
    if query.actor is not None:
        keys.append([summary_keys("user_id", query.actor)])
    if query.token_id is not None:
        keys.append(
            [
                summary_keys("token_id", query.token_id),
                summary_keys("subject", f"token/{query.token_id}"),
            ]
        )
    if query.type is not None:
        keys.append([summary_keys("type", query.type)])
    if query.subject is not None:
        keys.append([summary_keys("subject", query.subject)])
    return keys


def _matches(event: Event, query: AuditQuery) -> bool:
    if query.actor is not None and event.actor.user_id != query.actor:
        return False
    if query.token_id is not None and not (
        event.actor.token_id == query.token_id or event.subject == f"token/{query.token_id}"
    ):
        return False
    if query.type is not None and event.type != query.type:
        return False
    if query.subject is not None and event.subject != query.subject:
        return False
    if query.since is not None and event.time < query.since:
        return False
    return not (query.until is not None and event.time >= query.until)
