"""Planning a batch from the fast path's views (``shared.alert_decode``) is planning it from
pydantic alerts: same messages (topics, keys, bytes, headers), same decisions, same rejections;
the rules engine decides the same on both.

Alerts come from the rules property generators (``tests/unit/rules/test_property.py``), sent
as JSON with and without the fields the router derives or stamps (``id``, ``dedup_key``,
``starts_at``, ``team``), and published with global and team tokens (a team token stamps
``team``: the view is turned into an ``Alert`` and re-serialised).
"""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.router import intake
from services.router.authn import AuthOutcome
from services.router.intake import Inbound, inspect_record
from services.router.plan import BatchPlan, PlannedAlert, plan_batch
from services.rules.engine import reference
from services.rules.engine.compiled import compile_ruleset
from services.rules.engine.model import Ruleset, parse_ruleset
from services.rules.engine.scope import AlertSource
from shared.alert import Alert, AlertView
from shared.alert_decode import decode_alert
from shared.auth import TokenKind
from shared.settings import TopicSettings
from tests.unit.router._doubles import principal
from tests.unit.rules.test_property import TEAMS, alerts, rulesets, sources

TOPICS = TopicSettings(team_prefix="t.team.", unrouted="t.unrouted", rejected="t.rejected")
AUTH: dict[str, AuthOutcome] = {
    "global": principal("tok_a"),
    "team": principal("tok_b", kind=TokenKind.team, team=TEAMS[0]),
    "other": principal("tok_c", kind=TokenKind.team, team=TEAMS[1]),
}
_LEAVE_OUT = ("id", "dedup_key", "starts_at", "team")

_flat_payloads = st.sampled_from([{}, {"a": "billing"}, {"a": 3}, {"a": None}, {"b": [1]}])


@st.composite
def _documents(draw: st.DrawFn) -> bytes:
    """An alert of the rules generators as a producer might send it."""
    alert: Alert = draw(alerts())
    doc = json.loads(alert.to_bytes())
    if draw(st.booleans()):
        doc["payload"] = draw(_flat_payloads)  # most alerts are flat: the fast path's case
    if draw(st.booleans()):
        doc["dedup_key"] = draw(st.sampled_from(["", "dk", "dk2"]))
    for name in _LEAVE_OUT:
        if draw(st.integers(0, 3)) == 0:
            doc.pop(name, None)
    if draw(st.integers(0, 9)) == 0:
        return b"{broken" if draw(st.booleans()) else json.dumps({**doc, "extra": 1}).encode()
    return json.dumps(doc).encode()


class _FixedClock(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _FixedClock:
        return cls(2024, 5, 1, 10, tzinfo=tz)


def _inbounds(bodies: list[tuple[bytes, str]], *, fast: bool) -> list[Inbound]:
    parse = intake._parse if fast else intake._parse_model
    with mock.patch.object(intake, "_parse", parse):
        return [
            inspect_record(
                "alerts",
                n % 2,
                n,
                b"key",
                body,
                [("authorization", f"Bearer {token}".encode())],
                1_700_000_000_000,
            )
            for n, (body, token) in enumerate(bodies)
        ]


def _fields(alert: AlertView) -> str:
    """Every field's value and type (``repr``: a str is not a StrEnum, 1 is not 1.0)."""
    return repr([(n, type(getattr(alert, n)), getattr(alert, n)) for n in Alert.model_fields])


def _accepted(planned: PlannedAlert) -> tuple[Any, ...]:
    """What the decision record is made of (``engine._decisions``)."""
    return (
        _fields(planned.alert),
        planned.alert.kafka_key(),
        (planned.inbound.topic, planned.inbound.partition, planned.inbound.offset),
        planned.principal.token_id,
        planned.teams,
        planned.rule_ids,
        planned.ruleset_version,
        planned.fallback,
        planned.message_indexes,
    )


def _summary(plan: BatchPlan) -> tuple[Any, ...]:
    return (
        plan.messages,
        [_accepted(p) for p in plan.accepted],
        [(i.offset, r) for i, r in plan.rejected],
        plan.copies_by_team,
        plan.unrouted,
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rulesets(),
    st.lists(st.tuples(_documents(), st.sampled_from(sorted(AUTH))), min_size=1, max_size=8),
)
def test_a_batch_of_views_plans_as_a_batch_of_alerts(
    ruleset: Ruleset, bodies: list[tuple[bytes, str]]
) -> None:
    with mock.patch("shared.alert.datetime", _FixedClock):  # a left-out starts_at is "now"
        views, models = _inbounds(bodies, fast=True), _inbounds(bodies, fast=False)
    compiled = compile_ruleset(ruleset)
    assert _summary(plan_batch(views, AUTH, compiled, TOPICS)) == _summary(
        plan_batch(models, AUTH, compiled, TOPICS)
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rulesets(), st.lists(st.tuples(_documents(), sources), min_size=1, max_size=5))
def test_the_rules_decide_the_same_on_a_view(
    ruleset: Ruleset, batch: list[tuple[bytes, AlertSource]]
) -> None:
    compiled = compile_ruleset(ruleset)
    pairs = [
        (view, Alert.model_validate_json(body), source)
        for body, source in batch
        if (view := decode_alert(body)) is not None
    ]
    for view, model, source in pairs:
        decided = compiled.evaluate(model, source)
        assert compiled.evaluate(view, source) == decided
        assert reference.evaluate(ruleset, view, source) == decided
    assert compiled.evaluate_many([v for v, _, _ in pairs], [s for _, _, s in pairs]) == (
        compiled.evaluate_many([m for _, m, _ in pairs], [s for _, _, s in pairs])
    )


def test_native_alerts_with_an_id_are_planned_from_views() -> None:
    """The properties above compare something: ordinary alerts do take the fast path, go out
    as the producer's bytes, and a team token's stamp re-serialises the view."""
    body = b'{"id":"a1","source":"s","summary":"x","service":"billing"}'
    inbounds = _inbounds([(body, "global"), (body, "team")], fast=True)
    assert not [i for i in inbounds if i.alert is None or isinstance(i.alert, Alert)]
    plan = plan_batch(inbounds, AUTH, compile_ruleset(parse_ruleset({"rules": []})), TOPICS)
    assert plan.messages[0].value == body
    assert Alert.model_validate_json(plan.messages[1].value).team == TEAMS[0]
