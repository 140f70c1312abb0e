"""Queries filter by actor, token id, type, subject and time, with a stable cursor."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from services.audit.errors import InvalidCursorError
from services.audit.query import AuditQuery, query_log
from services.audit.segments import list_segments
from services.audit.summaries import SegmentSummaries
from tests.unit.audit._helpers import T0, event, open_log


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    audit_log, _ = open_log(tmp_path, segment_max_bytes=4096)
    try:
        audit_log.append([event(n) for n in range(1, 41)])
        audit_log.append([event(41, type="token.revoked", subject="token/special")])
    finally:
        audit_log.close()
    return tmp_path


def test_filters(log_dir: Path) -> None:
    def seqs(**filters: object) -> list[int]:
        page = query_log(log_dir, AuditQuery.model_validate(filters), limit=1000)
        return [r.seq for r in page.records]

    assert seqs(actor="user-1") == [n for n in range(1, 42) if n % 3 == 1]
    assert seqs(token_id="tok-0") == [n for n in range(1, 42) if n % 2 == 0]
    assert seqs(token_id="t7") == [7]  # the token the event is about
    assert seqs(type="token.revoked") == [41]
    assert seqs(subject="token/special") == [41]
    assert seqs(actor="user-1", type="token.created") == [n for n in range(1, 41) if n % 3 == 1]
    assert seqs(since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=13)) == [
        10,
        11,
        12,
    ]
    assert seqs(since=(T0 + timedelta(seconds=40)).replace(tzinfo=None)) == [40, 41]
    assert seqs(actor="nobody") == []


def test_cursor_pagination_visits_every_match_once(log_dir: Path) -> None:
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = query_log(log_dir, AuditQuery(actor="user-2"), cursor=cursor, limit=4)
        seen.extend(r.seq for r in page.records)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [n for n in range(1, 42) if n % 3 == 2]
    assert pages == 4


def test_records_carry_the_event_and_chain_fields(log_dir: Path) -> None:
    (first,) = query_log(log_dir, AuditQuery(), limit=1).records
    assert first.seq == 1
    assert first.prev_hash == "0" * 64
    assert first.event.actor.user_id == "user-1"


def test_bad_cursor(log_dir: Path) -> None:
    with pytest.raises(InvalidCursorError):
        query_log(log_dir, AuditQuery(), cursor="abc")


_QUERIES: list[dict[str, object]] = [
    {},
    {"actor": "user-1"},
    {"actor": "nobody"},
    {"token_id": "tok-0"},
    {"token_id": "t7"},
    {"type": "token.revoked"},
    {"subject": "token/special"},
    {"actor": "user-2", "type": "token.created"},
    {"since": T0 + timedelta(seconds=10), "until": T0 + timedelta(seconds=13)},
    {"since": T0 + timedelta(seconds=100)},
]


@pytest.mark.parametrize("filters", _QUERIES)
def test_summaries_never_change_an_answer(log_dir: Path, filters: dict[str, object]) -> None:
    query = AuditQuery.model_validate(filters)
    summaries = SegmentSummaries(log_dir)
    for limit in (3, 1000):
        plain = query_log(log_dir, query, limit=limit)
        assert query_log(log_dir, query, limit=limit, summaries=summaries) == plain
        assert query_log(log_dir, query, limit=limit, summaries=summaries) == plain  # cached


def test_sealed_segments_that_cannot_match_are_not_read(
    log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summaries = SegmentSummaries(log_dir)
    query_log(log_dir, AuditQuery(subject="token/special"), summaries=summaries)  # builds them
    segments = [path.name for _, path in list_segments(log_dir)]
    assert len(segments) > 2
    read: list[str] = []
    real = Path.read_bytes

    def counting(self: Path) -> bytes:
        if self.name.startswith("segment-"):
            read.append(self.name)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    page = query_log(
        log_dir, AuditQuery(subject="token/special"), summaries=SegmentSummaries(log_dir)
    )
    assert [r.seq for r in page.records] == [41]
    assert read == [segments[-1]]  # the summaries on disk ruled the sealed ones out
