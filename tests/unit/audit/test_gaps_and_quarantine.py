"""Sequence gaps are reported, late events close them; bad events are kept out with a reason."""

from __future__ import annotations

import json
from pathlib import Path

from services.audit.gaps import GapTracker
from services.audit.quarantine import Quarantine, Rejected, decode_event
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
