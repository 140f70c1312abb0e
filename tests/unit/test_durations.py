"""One duration format for the CLI, the settings and the APIs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.durations import InvalidDurationError, parse_duration, parse_instant
from shared.settings import RouterSettings, TokensSettings


def test_parse_duration() -> None:
    assert [parse_duration(t).total_seconds() for t in ("90", "45s", "15m", "1h", "30d", "2w")] == [
        90,
        45,
        900,
        3600,
        30 * 86400,
        14 * 86400,
    ]
    for bad in ("", "1y", "-5m", "1.5h", "h"):
        with pytest.raises(InvalidDurationError):
            parse_duration(bad)
    with pytest.raises(InvalidDurationError):
        parse_duration("90", unit_required=True)


def test_parse_instant() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_instant("2h", now=now) == now - timedelta(hours=2)
    assert parse_instant("2026-03-01T10:00:00") == datetime(2026, 3, 1, 10, tzinfo=UTC)
    with pytest.raises(InvalidDurationError):
        parse_instant("yesterday")


def test_settings_take_durations_and_numbers() -> None:
    tokens = TokensSettings(max_ttl_s="365d", cache_ttl_s="2m", redis_down_grace_s=7.5)
    assert (tokens.max_ttl_s, tokens.cache_ttl_s, tokens.redis_down_grace_s) == (
        365 * 86400,
        120.0,
        7.5,
    )
    assert RouterSettings(decision_retention_s="7d").decision_retention_s == 7 * 86400
    assert RouterSettings(decision_retention_s="600").decision_retention_s == 600
    with pytest.raises(ValueError, match="duration"):
        TokensSettings(max_ttl_s="a year")
