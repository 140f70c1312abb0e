"""A decision record survives the trip through the decisions topic unchanged."""

from __future__ import annotations

from typing import Any, NamedTuple

from services.router.decision_log import MEMBER_HEADER, SCOPES_HEADER, record_from_message
from services.router.decisions import DecisionRecord


class _Message(NamedTuple):  # the fields of an aiokafka ConsumerRecord the indexer reads
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def test_record_round_trip_through_headers() -> None:
    record = DecisionRecord("a1", "0000000000001:a1", ("all", "team:ops", "unrouted"), '{"x":1}')
    message: Any = _Message(
        key=record.alert_id.encode(),
        value=record.body.encode(),
        headers=[
            (MEMBER_HEADER, record.member.encode()),
            (SCOPES_HEADER, "\n".join(record.scopes).encode()),
        ],
    )
    assert record_from_message(message) == record
