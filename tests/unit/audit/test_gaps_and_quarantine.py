"""Sequence gaps are reported, late events close them; bad events are kept out with a reason."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit.gaps import GapTracker
from services.audit.quarantine import (
    _TOKEN_BYTES,
    _TOKEN_PREFIXES,
    Quarantine,
    Rejected,
    decode_event,
    decode_events,
)
from shared.auth import TOKEN_RE
from shared.events import Event
from tests.unit.audit._helpers import event


def test_gap_tracking() -> None:
    tracker = GapTracker()
    assert tracker.observe("tokens", 1) is None
    gap = tracker.observe("tokens", 5)
    assert gap is not None
    assert (gap.first, gap.last, gap.size) == (2, 4, 3)
    assert tracker.observe("tokens", 3) is None  # late: fills the middle of the gap
    assert tracker.observe("tokens", 5) is None  # a repeat with a new id: counted, not hidden
    assert tracker.observe("tokens", 0) is None  # unsequenced events are not tracked
    (state,) = tracker.snapshot()
    assert state.missing == [(2, 2), (4, 4)]
    assert (state.missing_count, state.last_sequence, state.repeated) == (2, 5, 1)


def test_decode_accepts_an_event() -> None:
    decoded = decode_event(event(1).to_bytes())
    assert isinstance(decoded, Event)
    assert decoded.id == "evt-tokens-1"


def test_decode_rejects_with_stable_reasons() -> None:
    token = "ayu_" + "Z9" * 24
    good = json.loads(event(1).to_bytes())
    cases = {
        b"": "empty",
        b"\xff\xfe": "not_utf8",
        b"{not json": "invalid_event",
        json.dumps({**good, "type": "Bad Type"}).encode(): "invalid_event",
        json.dumps({**good, "extra": 1}).encode(): "invalid_event",
        json.dumps({**good, "data": {"raw": token}}).encode(): "contains_secret",
    }
    for value, reason in cases.items():
        decoded = decode_event(value)
        assert isinstance(decoded, Rejected), value
        assert decoded.reason == reason
        assert token not in decoded.detail


def test_quarantine_is_written_once_per_offset_and_redacts(tmp_path: Path) -> None:
    token = "ayg_" + "Q1" * 24
    value = json.dumps({"raw": token}).encode()
    rejected = Rejected("contains_secret", "the event holds a token-shaped string")
    quarantine = Quarantine(tmp_path)
    assert quarantine.add([("audit", 0, 7, b"tokens", value, rejected)]) == 1
    assert Quarantine(tmp_path).add([("audit", 0, 7, b"tokens", value, rejected)]) == 0
    text = quarantine.path.read_text()
    assert token not in text
    (doc,) = [json.loads(line) for line in text.splitlines()]
    assert (doc["reason"], doc["offset"], doc["key"]) == ("contains_secret", 7, "tokens")
    assert "[redacted-token]" in doc["value"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["tokens", "rules"]), st.integers(0, 12)), max_size=30))
def test_observing_a_batch_equals_observing_one_by_one(items: list[tuple[str, int]]) -> None:
    one, many = GapTracker(), GapTracker()
    gaps = [gap for source, seq in items if (gap := one.observe(source, seq))]
    assert many.observe_many(items) == gaps
    assert many.snapshot() == one.snapshot()


def _values() -> list[bytes | None]:
    token = "ayt_" + "k7" * 21
    good = json.loads(event(1).to_bytes())
    return [
        event(1).to_bytes(),
        event(2, source="rules").to_bytes(),
        b"  " + event(3).to_bytes() + b"\n",  # JSON whitespace around the object is fine
        None,
        b"",
        b"\xff\xfe",
        b"{not json",
        b"[]",
        json.dumps({**good, "type": "Bad Type"}).encode(),
        json.dumps({**good, "extra": 1}).encode(),
        json.dumps({**good, "data": {"raw": token}}).encode(),
        token.encode(),
        b"x" + token.encode(),  # no word boundary before it: not token-shaped
        event(4, data={"k": "ayu_short"}).to_bytes(),
    ]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_values()), max_size=12))
def test_batched_decode_equals_one_by_one(values: list[bytes | None]) -> None:
    assert decode_events(values) == [decode_event(v) for v in values]


def test_batched_decode_splits_a_mixed_batch() -> None:
    values = _values()
    decoded = decode_events(values)
    kinds = [d.id if isinstance(d, Event) else d.reason for d in decoded]
    assert kinds == [
        "evt-tokens-1",
        "evt-rules-2",
        "evt-tokens-3",
        "empty",
        "empty",
        "not_utf8",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        "invalid_event",
        "contains_secret",
        "contains_secret",
        "invalid_event",
        "evt-tokens-4",
    ]


@settings(max_examples=200, deadline=None)
@given(st.from_regex(TOKEN_RE, fullmatch=True))
def test_every_token_shaped_string_has_a_prefix_the_fast_scan_looks_for(token: str) -> None:
    raw = token.encode()
    assert _TOKEN_BYTES.search(raw)
    assert any(prefix in raw for prefix in _TOKEN_PREFIXES)
