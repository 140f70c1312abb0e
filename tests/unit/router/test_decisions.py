from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.router.decisions import (
    Decision,
    DecisionEncoder,
    Placement,
    decision_from_stored,
    decode_cursor,
    encode_cursor,
    readable_decision,
)

_AT = datetime(2031, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
_ROUTED = Decision(
    alert_id="a1",
    outcome="routed",
    alert_status="firing",
    severity="critical",
    dedup_key="d1",
    summary='db is "slow" <b>',
    service="db",
    teams=("dba", "sre"),
    rule_ids=("r1",),
    ruleset_version=3,
    fallback=False,
    token_id="tok",
    received_at=_AT,
    routed_at=_AT,
    source_topic="alerts",
    source_partition=1,
    source_offset=2,
    published=(
        Placement(topic="t.dba", partition=0, offset=5),
        Placement(topic="t.sre", partition=1, offset=6),
    ),
)


def test_fast_decision_record_matches_the_model() -> None:
    fast = DecisionEncoder(_AT, _AT.isoformat(), int(_AT.timestamp() * 1000)).record(
        "a1",
        "routed",
        "firing",
        "critical",
        "d1",
        ("dba", "sre"),
        ("r1",),
        3,
        False,
        "tok",
        ("alerts", 1, 2),
        [("t.dba", 0, 5), ("t.sre", 1, 6)],
        summary='db is "slow" <b>',
        service="db",
    )
    assert decision_from_stored(fast.body) == _ROUTED
    slow = _ROUTED.to_record()
    assert (fast.alert_id, fast.member, fast.scopes) == (slow.alert_id, slow.member, slow.scopes)
    assert fast.scopes == ("all", "team:dba", "team:sre")
    assert fast.body.startswith("[")  # a row, not the model's JSON: half the bytes
    assert len(fast.body) < len(_ROUTED.model_dump_json())


_UNROUTED = _ROUTED.model_copy(
    update={
        "alert_id": "a2",
        "outcome": "unrouted",
        "alert_status": "resolved",
        "dedup_key": "a2",
        "teams": (),
        "rule_ids": (),
        "fallback": True,
        "published": (),
    }
)


@pytest.mark.parametrize("model", [_ROUTED, _UNROUTED], ids=["routed", "unrouted"])
def test_values_written_before_rows_still_read_as_the_model(model: Decision) -> None:
    assert decision_from_stored(model.model_dump_json().encode()) == model  # as Redis returns it
    assert decision_from_stored(model.to_record().body) == model


def test_cursor_round_trip_and_garbage() -> None:
    member = "1900000000000:alert-1"
    assert decode_cursor(encode_cursor(member)) == member
    with pytest.raises(ValueError, match="cursor"):
        decode_cursor(encode_cursor("nonsense"))


@pytest.mark.parametrize(
    "raw",
    [b"not json", b'["2031-01-01T00:00:00Z"]', b'{"alert_id": 1}', b'["a", "b", [1, 2, 3]]'],
)
def test_a_damaged_value_reads_as_missing_not_as_an_error(raw: bytes) -> None:
    assert readable_decision(raw) is None
