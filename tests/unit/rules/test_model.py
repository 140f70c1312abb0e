"""Invalid rules are refused with the rule, the condition and the reason."""

from __future__ import annotations

from typing import Any

import pytest

from services.rules.engine.errors import RulesetInvalidError
from services.rules.engine.model import MAX_VALUES, Rule, parse_rule, parse_ruleset
from tests.unit.rules._build import cond, rule


def _problem(*conditions: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(RulesetInvalidError) as info:
        parse_ruleset({"rules": [rule("payments-a", list(conditions))]})
    assert info.value.code == "invalid_rule"
    assert info.value.http_status == 422
    problem: dict[str, Any] = info.value.problems[0]
    assert problem["rule"] == "payments-a"
    assert problem["condition"] == "condition_groups[0].conditions[0]"
    return problem


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        (cond("service", "is_kinda"), "unknown operator 'is_kinda'"),
        (cond("service", "is_one_of"), "empty value list"),
        (cond("service", "matches_regex", "(a)\\1"), "invalid regex"),
        (cond("service", "matches_regex", "(?=x)"), "invalid regex"),
        (cond("service", "matches_regex", ".{1000}"), "too costly"),
        (cond("service", "is_one_of", *[str(n) for n in range(MAX_VALUES + 1)]), "too many"),
        (cond("nope", "exists"), "unknown field 'nope'"),
        (cond("service", "equals", "a", "b"), "exactly one value"),
        (cond("service", "exists", on_missing="match"), "on_missing"),
    ],
)
def test_bad_conditions_are_named(condition: dict[str, Any], reason: str) -> None:
    assert reason in _problem(condition)["reason"]


def test_error_message_names_rule_and_condition() -> None:
    with pytest.raises(RulesetInvalidError) as info:
        parse_ruleset({"rules": [rule("ok-a"), rule("payments-b", [cond("x", "exists")])]})
    assert str(info.value).startswith("rule 'payments-b', condition condition_groups[0]")


def test_names_must_be_unique_and_positions_follow_order() -> None:
    with pytest.raises(RulesetInvalidError, match="used twice"):
        parse_ruleset({"rules": [rule("payments-a"), rule("payments-a")]})
    rs = parse_ruleset({"rules": [rule("payments-a", position=7), rule("payments-b")]})
    assert [r.position for r in rs.rules] == [0, 1]


def test_yaml_shapes_are_accepted() -> None:
    parsed = parse_rule(
        {
            "name": "x",
            "owner_team": "payments",
            "destinations": ["payments", "payments"],
            "continue": True,
            "condition_groups": [
                {"conditions": [{"field": "labels.code", "operator": "equals", "value": 500}]}
            ],
        }
    )
    assert parsed.continue_
    assert parsed.destinations == ("payments",)
    assert parsed.condition_groups[0].conditions[0].values == ("500",)
    dumped = parsed.dump()
    assert dumped["continue"] is True
    assert Rule.model_validate(dumped) == parsed


def test_bad_team_names_and_missing_destinations() -> None:
    with pytest.raises(RulesetInvalidError) as info:
        parse_rule({"name": "x", "owner_team": "Pay Ments", "destinations": []})
    reasons = " ".join(p["reason"] for p in info.value.problems)
    assert "owner_team" in reasons
    assert "destinations" in reasons
