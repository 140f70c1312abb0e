"""``evaluate_many`` evaluates once per distinct input of a batch: the same decisions as one
evaluation per alert (and as the reference evaluator), whatever the ruleset and the repeats."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.rules.engine import reference
from services.rules.engine.compiled import compile_ruleset
from services.rules.engine.model import Ruleset, parse_ruleset
from services.rules.engine.scope import AlertSource
from shared.alert import Alert
from tests.unit.rules.test_property import alerts, rulesets, sources


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rulesets(),
    st.lists(st.tuples(alerts(), sources), min_size=1, max_size=4),
    st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=40),
    st.booleans(),
)
def test_shared_decisions_equal_one_evaluation_per_alert(
    ruleset: Ruleset,
    pool: list[tuple[Alert, AlertSource]],
    picks: list[int],
    with_sources: bool,
) -> None:
    batch = [pool[i % len(pool)] for i in picks]  # inputs repeat, as in a real batch
    compiled = compile_ruleset(ruleset)
    batch_alerts = [a for a, _ in batch]
    if with_sources:
        got = compiled.evaluate_many(batch_alerts, [s for _, s in batch])
        expected = [compiled.evaluate(a, s) for a, s in batch]
        assert expected == [reference.evaluate(ruleset, a, s) for a, s in batch]
    else:
        got = compiled.evaluate_many(batch_alerts)
        expected = [compiled.evaluate(a) for a in batch_alerts]
    assert got == expected


def _by_service() -> Ruleset:
    return parse_ruleset(
        {
            "rules": [
                {
                    "name": "db",
                    "owner_team": "dba",
                    "destinations": ["dba"],
                    "condition_groups": [
                        {
                            "conditions": [
                                {"field": "service", "operator": "starts_with", "values": ["db"]}
                            ]
                        }
                    ],
                }
            ]
        },
        version=3,
    )


def test_alerts_with_the_same_input_share_one_decision() -> None:
    compiled = compile_ruleset(_by_service())
    batch = [Alert(source="s", summary=f"n{n}", service=("db-1", "web")[n % 2]) for n in range(6)]
    decisions = compiled.evaluate_many(batch)
    assert [d.teams for d in decisions] == [("dba",), (), ("dba",), (), ("dba",), ()]
    assert decisions[0] is decisions[2] is decisions[4]  # evaluated once: summary is not read


def test_a_rule_on_a_per_alert_field_evaluates_every_alert() -> None:
    ruleset = parse_ruleset(
        {
            "rules": [
                {
                    "name": "disk",
                    "owner_team": "sre",
                    "destinations": ["sre"],
                    "condition_groups": [
                        {
                            "conditions": [
                                {"field": "summary", "operator": "contains", "values": ["disk"]}
                            ]
                        }
                    ],
                }
            ]
        }
    )
    compiled = compile_ruleset(ruleset)
    batch = [Alert(source="s", summary=s, service="x") for s in ("disk full", "cpu", "disk full")]
    decisions = compiled.evaluate_many(batch)
    assert [d.teams for d in decisions] == [("sre",), (), ("sre",)]
    assert decisions[0] is not decisions[2]


def test_mostly_distinct_inputs_stop_sharing_and_decide_the_same() -> None:
    compiled = compile_ruleset(_by_service())
    batch = [
        Alert(source="s", summary="x", service=f"db-{n}" if n % 3 else "web") for n in range(300)
    ]
    decisions = compiled.evaluate_many(batch)
    assert decisions == [compiled.evaluate(a) for a in batch]
    assert decisions[0] is decisions[3]  # shared before the probe saw mostly distinct inputs
    assert decisions[297] is not decisions[294]  # evaluated one by one after it


def test_sources_must_match_alerts() -> None:
    compiled = compile_ruleset(_by_service())
    with pytest.raises(ValueError, match="1 alerts but 0 sources"):
        compiled.evaluate_many([Alert(source="s", summary="x")], [])
