"""Backtest counting without Kafka: parsing, skips, moves, per-team shifts, the moved list."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.rules.backtest import (
    UNROUTED,
    BacktestRange,
    BacktestTally,
    InvalidBacktestRangeError,
    ReplayRecord,
    TeamShift,
    parse_instant,
)
from services.rules.engine.compiled import compile_ruleset
from shared.alert import MAX_ALERT_BYTES
from tests.unit.rules._build import cond, rule, ruleset

BASELINE = ruleset(
    rule("payments-billing", [cond("service", "is_one_of", "billing")]),
    rule("search-indexer", [cond("service", "is_one_of", "indexer")]),
    version=7,
)
# billing -> payments too, but through a renamed rule; indexer -> platform; db -> platform.
CANDIDATE = ruleset(
    rule("payments-billing-v2", [cond("service", "is_one_of", "billing")]),
    rule("platform-indexer", [cond("service", "is_one_of", "indexer", "db")]),
)


def _value(**fields: Any) -> bytes:
    return json.dumps({"source": "test", "summary": "s", **fields}).encode()


def _tally(limit: int = 50) -> BacktestTally:
    return BacktestTally(compile_ruleset(BASELINE), compile_ruleset(CANDIDATE), moved_limit=limit)


def test_counts_moves_shifts_and_rule_changes() -> None:
    tally = _tally()
    records = [
        ReplayRecord(0, 0, _value(id="a1", service="billing")),  # same team, other rule
        ReplayRecord(0, 1, _value(id="a2", service="indexer", summary="lag")),  # search -> pl.
        ReplayRecord(1, 0, _value(service="db")),  # unrouted -> platform, no id sent
        ReplayRecord(1, 1, _value(id="a4", service="web")),  # unrouted both times
    ]
    tally.add_batch(records[:2])
    tally.add_batch(records[2:])
    report = tally.report(topic="t")

    assert (report.read, report.skipped, report.evaluated) == (4, 0, 4)
    assert (report.unchanged, report.rules_changed, report.moved) == (2, 1, 2)
    assert report.baseline_version == 7
    assert report.teams == (
        TeamShift(team=UNROUTED, gained=0, lost=1),
        TeamShift(team="platform", gained=2, lost=0),
        TeamShift(team="search", gained=0, lost=1),
    )
    first, second = report.moved_alerts
    assert (first.id, first.partition, first.offset, first.summary) == ("a2", 0, 1, "lag")
    assert (first.before_teams, first.after_teams) == (("search",), ("platform",))
    assert (first.before_rules, first.after_rules) == (("search-indexer",), ("platform-indexer",))
    assert second.id is None  # the router derives one at intake; the backtest does not guess
    assert (second.before_teams, second.after_teams) == ((), ("platform",))


def test_unparsable_records_are_skipped_by_reason() -> None:
    tally = _tally()
    tally.add_batch(
        [
            ReplayRecord(0, 0, None),
            ReplayRecord(0, 1, b"{not json"),
            ReplayRecord(0, 2, b"\xff\xfe"),
            ReplayRecord(0, 3, json.dumps({"service": "billing"}).encode()),  # no source
            ReplayRecord(0, 4, b" " * (MAX_ALERT_BYTES + 1)),
            ReplayRecord(0, 5, _value(service="indexer")),
        ]
    )
    report = tally.report(topic="t")
    assert report.skipped_reasons == {
        "empty": 1,
        "invalid_json": 1,
        "invalid_utf8": 1,
        "oversized": 1,
        "schema_violation": 1,
    }
    assert (report.read, report.skipped, report.evaluated, report.moved) == (6, 5, 1, 1)


def test_reordered_destinations_are_not_a_move() -> None:
    both = [cond("service", "is_one_of", "checkout")]
    before = ruleset(rule("a", both, dest="payments", cont=True), rule("b", both, dest="security"))
    after = ruleset(rule("b", both, dest="security", cont=True), rule("a", both, dest="payments"))
    tally = BacktestTally(compile_ruleset(before), compile_ruleset(after))
    tally.add_batch([ReplayRecord(0, 0, _value(service="checkout"))])
    report = tally.report(topic="t")
    assert (report.moved, report.unchanged, report.rules_changed) == (0, 1, 1)


def test_moved_list_is_bounded_but_counts_are_not() -> None:
    tally = _tally(limit=3)
    tally.add_batch([ReplayRecord(0, n, _value(service="indexer")) for n in range(10)])
    report = tally.report(topic="t")
    assert report.moved == 10
    assert [m.offset for m in report.moved_alerts] == [0, 1, 2]
    assert report.teams == (
        TeamShift(team="platform", gained=10, lost=0),
        TeamShift(team="search", gained=0, lost=10),
    )


def test_parse_instant() -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert parse_instant("2h", now=now) == now - timedelta(hours=2)
    assert parse_instant("90s", now=now) == now - timedelta(seconds=90)
    assert parse_instant("7d", now=now) == now - timedelta(days=7)
    assert parse_instant("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert parse_instant("2026-03-01T10:00:00+02:00") == datetime(2026, 3, 1, 8, tzinfo=UTC)
    with pytest.raises(InvalidBacktestRangeError):
        parse_instant("yesterday")


@pytest.mark.parametrize(
    "window",
    [
        BacktestRange("t", from_offset=1, since=datetime(2026, 1, 1, tzinfo=UTC)),
        BacktestRange("t", to_offset=1, until=datetime(2026, 1, 1, tzinfo=UTC)),
        BacktestRange("t", from_offset=-1),
        BacktestRange("t", max_records=0),
        BacktestRange(
            "t", since=datetime(2026, 1, 2, tzinfo=UTC), until=datetime(2026, 1, 1, tzinfo=UTC)
        ),
    ],
)
def test_contradictory_ranges_are_refused(window: BacktestRange) -> None:
    with pytest.raises(InvalidBacktestRangeError):
        window.check()
