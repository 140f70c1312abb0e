"""The routing summary sums batches and says when a line is due (clock injected)."""

from __future__ import annotations

from services.router.summary import RoutingSummary


def _add(summary: RoutingSummary, now: float, **extra: object) -> None:
    fields: dict[str, object] = {
        "records": 10,
        "alerts": 9,
        "routed_copies": 12,
        "unrouted": 1,
        "rejected": {"invalid_json": 1},
        "duration_ms": 2.5,
        "stages": {"inspect_ms": 0.5, "send_ms": 1.0},
        "ruleset_version": 3,
        "now": now,
    }
    fields.update(extra)
    summary.add(**fields)  # type: ignore[arg-type]


def test_a_line_sums_the_batches_since_the_last_one() -> None:
    summary = RoutingSummary(every_s=10)
    _add(summary, 100.0)
    _add(summary, 104.0, duration_ms=7.25, rejected={"unauthorized": 2}, ruleset_version=4)
    assert not summary.due(109.9)
    assert summary.due(110.0)
    line = summary.take(110.0)
    assert line == {
        "seconds": 10.0,
        "batches": 2,
        "records": 20,
        "alerts": 18,
        "routed_copies": 24,
        "unrouted": 2,
        "rejected": 3,
        "reject_reasons": {"invalid_json": 1, "unauthorized": 2},
        "slowest_batch_ms": 7.25,
        "ruleset_version": 4,
        "inspect_ms": 1.0,
        "send_ms": 2.0,
    }


def test_after_a_line_the_next_interval_starts_with_the_next_batch() -> None:
    summary = RoutingSummary(every_s=10)
    _add(summary, 0.0)
    assert summary.take(10.0) is not None
    assert summary.take(11.0) is None  # nothing routed since
    assert not summary.due(500.0)  # an idle router writes no lines
    _add(summary, 500.0)
    assert not summary.due(509.0)
    line = summary.take(505.0)  # at shutdown: whatever was routed, before it is due
    assert line is not None
    assert (line["batches"], line["seconds"]) == (1, 5.0)
