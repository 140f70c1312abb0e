"""``batch-v2``: the rows the router publishes become, in the indexer, exactly the records the
router used to build itself (the JSON of a :class:`Decision`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.router.decision_batch import decode_batch, encode_batch
from services.router.decision_log import ROWS_FORMAT, DecisionLog, records_from_message
from services.router.decisions import Decision, Placement, decision_from_stored
from services.router.engine import _decision_batch, _decisions
from services.router.intake import Inbound
from services.router.plan import BatchPlan, PlannedAlert
from shared.alert import Alert
from shared.auth import Principal, TokenKind
from shared.kafka_native import Delivered, DeliveryBatch, Outgoing

_AT = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
_text = st.text(st.characters(codec="utf-8"), min_size=1, max_size=40)
_names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)


class _Message(NamedTuple):  # what the indexer reads of an aiokafka record
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@st.composite
def _plans(draw: st.DrawFn) -> tuple[BatchPlan, list[Delivered]]:
    placed = [
        Delivered(draw(_names), draw(st.integers(0, 50)), draw(st.integers(0, 2**40)))
        for _ in range(draw(st.integers(0, 6)))
    ]
    plan = BatchPlan()
    for n in range(draw(st.integers(0, 8))):
        same_key = draw(st.booleans())
        alert = Alert.model_validate(
            {
                "id": f"a{n}-{draw(_names)}",
                "dedup_key": "" if same_key else draw(_text),
                "source": "test",
                "summary": draw(_text),
                "service": draw(st.sampled_from(["", "db", 'we"ird\\ü'])),
                "severity": draw(st.sampled_from(["critical", "error", "warning", "info"])),
                "status": draw(st.sampled_from(["firing", "resolved"])),
            }
        )
        teams = tuple(draw(st.lists(_names, max_size=3, unique=True)))
        principal = Principal(
            token_id=draw(_names), kind=TokenKind.global_, permissions=frozenset()
        )
        inbound = Inbound(draw(_names), draw(st.integers(0, 9)), n, None, b"")
        plan.accepted.append(
            PlannedAlert(
                inbound=inbound,
                alert=alert,
                principal=principal,
                teams=teams,
                rule_ids=tuple(draw(st.lists(_names, max_size=3))),
                ruleset_version=draw(st.integers(0, 10**6)),
                fallback=draw(st.booleans()),
                message_indexes=draw(
                    st.lists(st.integers(0, len(placed) - 1), max_size=3) if placed else st.just([])
                ),
            )
        )
    return plan, placed


@settings(max_examples=150, deadline=None)
@given(_plans(), st.booleans())
def test_v2_rows_decode_to_the_records_the_router_built(
    case: tuple[BatchPlan, list[Delivered]], small_records: bool
) -> None:
    plan, placed = case
    routed_at = _AT + timedelta(milliseconds=3)
    expected = _decisions(plan, placed, _AT, routed_at)
    batch = _decision_batch(plan, placed, _AT, routed_at)
    values = encode_batch(batch, limit=200 if small_records else 512 * 1024)
    decoded = [r for value in values for r in decode_batch(value)]
    assert decoded == expected
    for record, planned in zip(decoded, plan.accepted, strict=True):
        alert = planned.alert
        assert decision_from_stored(record.body) == Decision(
            alert_id=alert.id,
            outcome="routed" if planned.teams else "unrouted",
            alert_status=alert.status,
            severity=alert.severity,
            dedup_key=alert.dedup_key,
            summary=alert.summary,
            service=alert.service,
            teams=planned.teams,
            rule_ids=planned.rule_ids,
            ruleset_version=planned.ruleset_version,
            fallback=planned.fallback,
            token_id=planned.principal.token_id,
            received_at=_AT,
            routed_at=routed_at,
            source_topic=planned.inbound.topic,
            source_partition=planned.inbound.partition,
            source_offset=planned.inbound.offset,
            published=tuple(
                Placement(topic=t, partition=p, offset=o)
                for t, p, o in (placed[i] for i in planned.message_indexes)
            ),
        )
        slow = decision_from_stored(record.body).to_record()
        assert (record.alert_id, record.member, record.scopes) == slow[:3]


class _Producer:
    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    def produce_batch(
        self, messages: Any, delivery: DeliveryBatch, indexes: Any
    ) -> tuple[int, list[int], str]:
        self.sent.extend(messages)
        return len(self.sent), [], ""


def _one_plan(count: int, summary: str = "db is slow") -> tuple[BatchPlan, list[Delivered]]:
    placed = [Delivered("t.team.dba", 0, n) for n in range(count)]
    plan = BatchPlan()
    principal = Principal(token_id="tok1", kind=TokenKind.global_, permissions=frozenset())
    for n in range(count):
        alert = Alert(id=f"id-{n}", source="test", summary=summary, service="db")
        plan.accepted.append(
            PlannedAlert(
                Inbound("alerts", 0, n, None, b""), alert, principal, ("dba",), ("r1",), 1, False
            )
        )
        plan.accepted[-1].message_indexes.append(n)
    return plan, placed


def test_a_batch_travels_as_one_v2_record_that_the_indexer_reads() -> None:
    plan, placed = _one_plan(500)

    async def send() -> list[Outgoing]:
        producer = _Producer()
        DecisionLog(producer, "decisions").send_batch(_decision_batch(plan, placed, _AT, _AT))
        return producer.sent

    sent = asyncio.run(send())
    assert len(sent) == 1
    topic, key, value, headers = sent[0]
    assert (topic, key) == ("decisions", None)
    assert dict(headers)["alertyard-decision-format"] == ROWS_FORMAT
    back = records_from_message(_Message(key, value, list(headers)))
    assert back == _decisions(plan, placed, _AT, _AT)


def test_large_v2_batches_are_split_below_the_record_limit() -> None:
    plan, placed = _one_plan(400, summary="s" * 1000)
    batch = _decision_batch(plan, placed, _AT, _AT)
    values = encode_batch(batch, limit=64 * 1024)
    assert len(values) > 1
    assert all(len(v) <= 64 * 1024 for v in values)
    assert [r for v in values for r in decode_batch(v)] == _decisions(plan, placed, _AT, _AT)


def test_a_v2_row_of_the_wrong_width_is_refused_before_it_is_stored() -> None:
    head = ["2031-01-01T00:00:00+00:00", "2031-01-01T00:00:00+00:00", 1924992000000]
    row = ["a1", "routed", "firing", "info", None, "", "", ["sre"], ["r1"], 1, False, "tok"]
    with pytest.raises(ValueError, match="columns"):
        decode_batch(orjson.dumps([head, [["t.sre", 0, 1]], [[*row, "alerts", 0, 1, 0, [0]]]]))
