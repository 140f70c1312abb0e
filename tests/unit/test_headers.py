"""Header contracts: bearer parsing never echoes the token; routed headers round-trip."""

from __future__ import annotations

import pytest

from shared.headers import RejectedHeaders, RoutedHeaders, bearer_token


def test_bearer_token_parsed_case_insensitively() -> None:
    assert bearer_token([("Authorization", b"bearer  abc ")]) == "abc"
    assert bearer_token([("x", b"y")]) is None


@pytest.mark.parametrize("value", [b"Basic abc", b"Bearer", b"Bearer   ", b"\xffBearer x"])
def test_malformed_bearer_is_refused_without_echo(value: bytes) -> None:
    with pytest.raises(ValueError, match="authorization") as info:
        bearer_token([("authorization", value)])
    assert "abc" not in str(info.value)


def test_routed_headers_round_trip() -> None:
    headers = RoutedHeaders(
        alert_id="a1",
        team="payments",
        rule_ids=("r1", "r2"),
        ruleset_version=7,
        token_id="tok_1",
        source_topic="alerts",
        source_partition=2,
        source_offset=41,
    )
    assert RoutedHeaders.from_kafka(headers.to_kafka()) == headers


def test_rejected_headers_round_trip() -> None:
    headers = RejectedHeaders(
        reason="invalid_json",
        detail="line 1",
        source_topic="a.b",
        source_partition=0,
        source_offset=9,
    )
    assert RejectedHeaders.from_kafka(headers.to_kafka()) == headers
