"""Properties: the compiled evaluator and the reference evaluator always agree, for any
source; and team rules never change where an alert from a source their team does not own goes.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.rules.engine import reference
from services.rules.engine.compiled import compile_ruleset
from services.rules.engine.model import Operator, RuleScope, Ruleset, parse_ruleset
from services.rules.engine.scope import AlertSource, owners_of
from shared.alert import Alert

FIELDS = ["service", "environment", "severity", "team", "labels.env", "labels.team", "payload.a.b"]
WORDS = ["billing", "Billing", "checkout", "prod", "staging", "", "critical", "warning", "pay"]
TEAMS = ["payments", "platform", "search", "security"]
REGEXES = ["bill.*", "[a-z]+", "prod|staging", "", "(?i)PAY.*"]
TOKENS = ["tok_a", "tok_b", "tok_c"]

words = st.sampled_from(WORDS)


@st.composite
def conditions(draw: st.DrawFn) -> dict[str, Any]:
    operator = draw(st.sampled_from(list(Operator)))
    data: dict[str, Any] = {"field": draw(st.sampled_from(FIELDS)), "operator": operator.value}
    if operator in (Operator.exists, Operator.is_empty):
        return data
    if operator in (Operator.matches_regex, Operator.not_matches_regex):
        data["values"] = [draw(st.sampled_from(REGEXES))]
    elif operator in (Operator.equals, Operator.not_equals):
        data["values"] = [draw(words)]
    else:
        data["values"] = draw(st.lists(words, min_size=1, max_size=3))
    data["case_insensitive"] = draw(st.booleans())
    on_missing = draw(st.sampled_from([None, "match", "no_match"]))
    if on_missing:
        data["on_missing"] = on_missing
    return data


@st.composite
def rulesets(draw: st.DrawFn) -> Ruleset:
    count = draw(st.integers(min_value=0, max_value=12))
    rules = []
    for n in range(count):
        groups = draw(
            st.lists(
                st.lists(conditions(), min_size=1, max_size=3).map(lambda c: {"conditions": c}),
                max_size=3,
            )
        )
        rules.append(
            {
                "name": f"r{n}",
                "owner_team": draw(st.sampled_from(TEAMS)),
                "destinations": draw(st.lists(st.sampled_from(TEAMS), min_size=1, max_size=2)),
                "condition_groups": groups,
                "continue": draw(st.booleans()),
                "fallback": draw(st.booleans().map(lambda b: b and draw(st.booleans()))),
                "enabled": draw(st.sampled_from([True, True, True, False])),
                "scope": draw(st.sampled_from(["org", "team"])),
            }
        )
    sources = draw(
        st.dictionaries(
            st.sampled_from(TOKENS), st.lists(st.sampled_from(TEAMS), max_size=2), max_size=3
        )
    )
    return parse_ruleset({"rules": rules, "sources": sources}, version=draw(st.integers(0, 5)))


sources = st.builds(
    AlertSource,
    token_id=st.one_of(st.none(), st.sampled_from(TOKENS)),
    team=st.one_of(st.none(), st.sampled_from(TEAMS)),
)


@st.composite
def alerts(draw: st.DrawFn) -> Alert:
    labels = draw(st.dictionaries(st.sampled_from(["env", "team"]), words, max_size=2))
    payload = draw(
        st.sampled_from(
            [{}, {"a": None}, {"a": {"b": "billing"}}, {"a": {"b": 3}}, {"a": {"b": []}}]
        )
    )
    return Alert(
        source="prop",
        summary="s",
        service=draw(words),
        environment=draw(words),
        severity=draw(st.sampled_from(["critical", "warning", "info"])),
        team=draw(st.one_of(st.none(), words.filter(bool))),
        labels=labels,
        payload=payload,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rulesets(), st.lists(st.tuples(alerts(), sources), min_size=1, max_size=5))
def test_compiled_agrees_with_reference(
    ruleset: Ruleset, batch: list[tuple[Alert, AlertSource]]
) -> None:
    compiled = compile_ruleset(ruleset)
    for alert, source in batch:
        assert compiled.evaluate(alert, source) == reference.evaluate(ruleset, alert, source)
    assert compiled.evaluate_many([a for a, _ in batch], [s for _, s in batch]) == [
        reference.evaluate(ruleset, alert, source) for alert, source in batch
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rulesets(), alerts(), sources, st.sampled_from(TEAMS))
def test_a_team_rule_changes_nothing_for_sources_its_team_does_not_own(
    ruleset: Ruleset, alert: Alert, source: AlertSource, team: str
) -> None:
    """Whatever team rules ``team`` has (any conditions, fallback, continue, position), an
    alert from a source ``team`` does not own goes where it goes without them."""
    if team in owners_of(ruleset, source):
        return
    without = ruleset.evolve(
        version=ruleset.version,
        rules=tuple(
            r for r in ruleset.rules if not (r.scope is RuleScope.team and r.owner_team == team)
        ),
    )
    compiled = compile_ruleset(ruleset)
    assert compiled.evaluate(alert, source) == compile_ruleset(without).evaluate(alert, source)
