"""The routing semantics, checked on both evaluators at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from services.rules.engine import reference
from services.rules.engine.compiled import compile_ruleset
from services.rules.engine.decision import RoutingDecision
from services.rules.engine.model import Ruleset
from shared.alert import Alert
from tests.unit.rules._build import alert, cond, rule, ruleset

Evaluator = Callable[[Ruleset, Alert], RoutingDecision]


def _compiled(rs: Ruleset, a: Alert) -> RoutingDecision:
    return compile_ruleset(rs).evaluate(a)


@pytest.fixture(params=[reference.evaluate, _compiled], ids=["reference", "compiled"])
def evaluate(request: pytest.FixtureRequest) -> Evaluator:
    fn: Evaluator = request.param
    return fn


ISSUE_EXAMPLE = ruleset(
    rule(
        "payments-critical",
        [
            cond("service", "is_one_of", "checkout", "billing"),
            cond("labels.env", "is_not_one_of", "staging"),
        ],
    ),
    {
        "name": "everything-else",
        "owner_team": "platform",
        "fallback": True,
        "destinations": ["platform"],
    },
)


def test_issue_example(evaluate: Evaluator) -> None:
    hit = evaluate(ISSUE_EXAMPLE, alert(service="billing", labels={"env": "prod"}))
    assert hit.teams == ("payments",)
    assert hit.rule_names == ("payments-critical",)
    assert not hit.fallback
    assert hit.ruleset_version == 1
    # labels.env missing: is_not_one_of is true on a missing field by default.
    assert evaluate(ISSUE_EXAMPLE, alert(service="checkout")).teams == ("payments",)
    staging = evaluate(ISSUE_EXAMPLE, alert(service="billing", labels={"env": "staging"}))
    assert staging.teams == ("platform",)
    assert staging.fallback


def test_first_match_wins_and_continue_fans_out(evaluate: Evaluator) -> None:
    rs = ruleset(
        rule("security-audit", [cond("labels.kind", "equals", "auth")], cont=True),
        rule("payments-a", [cond("service", "equals", "billing")]),
        rule("search-b", [cond("service", "equals", "billing")]),
    )
    both = evaluate(rs, alert(service="billing", labels={"kind": "auth"}))
    assert both.teams == ("security", "payments")
    assert both.rule_names == ("security-audit", "payments-a")
    assert evaluate(rs, alert(service="billing")).teams == ("payments",)


def test_unrouted_without_fallback(evaluate: Evaluator) -> None:
    rs = ruleset(rule("payments-a", [cond("service", "equals", "billing")]))
    decision = evaluate(rs, alert(service="search"))
    assert decision.teams == ()
    assert decision.rule_ids == ()
    assert not decision.routed
    assert not decision.fallback


def test_groups_are_ored_conditions_anded(evaluate: Evaluator) -> None:
    rs = ruleset(
        rule(
            "payments-a",
            [cond("service", "equals", "billing"), cond("severity", "equals", "critical")],
            [cond("labels.team", "equals", "payments")],
        )
    )
    assert evaluate(rs, alert(service="billing", severity="critical")).routed
    assert not evaluate(rs, alert(service="billing", severity="warning")).routed
    assert evaluate(rs, alert(labels={"team": "payments"})).routed


@pytest.mark.parametrize(
    ("condition", "value", "expected"),
    [
        (cond("labels.x", "is_one_of", "a", "b"), "b", True),
        (cond("labels.x", "is_not_one_of", "a", "b"), "c", True),
        (cond("labels.x", "equals", "a"), "A", False),
        (cond("labels.x", "equals", "a", case_insensitive=True), "A", True),
        (cond("labels.x", "not_equals", "a"), "a", False),
        (cond("labels.x", "contains", "disk"), "the disk is full", True),
        (cond("labels.x", "does_not_contain", "DISK", case_insensitive=True), "a disk", False),
        (cond("labels.x", "starts_with", "db-", "pg-"), "pg-1", True),
        (cond("labels.x", "ends_with", "-prod"), "db-prod", True),
        (cond("labels.x", "matches_regex", "db-[0-9]+"), "db-12", True),
        # Regexes are anchored: a partial match is no match.
        (cond("labels.x", "matches_regex", "db-[0-9]+"), "xdb-12", False),
        (cond("labels.x", "matches_regex", "DB-.*", case_insensitive=True), "db-1", True),
        (cond("labels.x", "not_matches_regex", "db-.*"), "web-1", True),
        (cond("labels.x", "exists"), "", True),
        (cond("labels.x", "is_empty"), "", True),
        (cond("labels.x", "is_empty"), "x", False),
    ],
)
def test_operators(
    evaluate: Evaluator, condition: dict[str, object], value: str, expected: bool
) -> None:
    rs = ruleset(rule("payments-a", [condition]))
    assert evaluate(rs, alert(labels={"x": value})).routed is expected


@pytest.mark.parametrize(
    ("operator", "values", "on_missing", "expected"),
    [
        ("is_one_of", ["a"], None, False),
        ("is_not_one_of", ["a"], None, True),
        ("not_matches_regex", ["a"], None, True),
        ("contains", ["a"], None, False),
        ("is_one_of", ["a"], "match", True),
        ("is_not_one_of", ["a"], "no_match", False),
        ("exists", [], None, False),
        ("is_empty", [], None, True),
    ],
)
def test_missing_fields(
    evaluate: Evaluator, operator: str, values: list[str], on_missing: str | None, expected: bool
) -> None:
    extra = {"on_missing": on_missing} if on_missing else {}
    rs = ruleset(rule("payments-a", [cond("payload.deep.path", operator, *values, **extra)]))
    assert evaluate(rs, alert(payload={"deep": {}})).routed is expected
    assert evaluate(rs, alert(payload={"deep": None})).routed is expected


def test_payload_values_read_as_text(evaluate: Evaluator) -> None:
    rs = ruleset(
        rule("payments-a", [cond("payload.retries", "equals", "3")]),
        rule("search-b", [cond("payload.flags.on", "equals", "true")]),
        rule("platform-c", [cond("annotations.list", "is_empty")]),
    )
    assert evaluate(rs, alert(payload={"retries": 3})).teams == ("payments",)
    assert evaluate(rs, alert(payload={"flags": {"on": True}})).teams == ("search",)
    assert evaluate(rs, alert(annotations={"list": []})).teams == ("platform",)


def test_disabled_rules_are_skipped_and_catch_all_matches(evaluate: Evaluator) -> None:
    rs = ruleset(
        rule("payments-a", [cond("service", "equals", "billing")], enabled=False),
        rule("platform-all"),
    )
    assert evaluate(rs, alert(service="billing")).teams == ("platform",)


def test_fallback_only_when_nothing_matched(evaluate: Evaluator) -> None:
    rs = ruleset(
        rule("platform-fb", fallback=True),
        rule("payments-a", [cond("service", "equals", "billing")], cont=True),
    )
    assert evaluate(rs, alert(service="billing")).teams == ("payments",)
    other = evaluate(rs, alert(service="x"))
    assert other.teams == ("platform",)
    assert other.fallback


def test_destinations_dedupe_in_order(evaluate: Evaluator) -> None:
    rs = ruleset(
        rule("a", dest="payments", cont=True),
        {"name": "b", "owner_team": "search", "destinations": ["search", "payments"]},
    )
    decision = evaluate(rs, alert())
    assert decision.teams == ("payments", "search")
    assert decision.rule_names == ("a", "b")


def test_case_insensitive_index_lookup(evaluate: Evaluator) -> None:
    rs = ruleset(
        rule("payments-a", [cond("service", "is_one_of", "Billing", case_insensitive=True)]),
        rule("search-b", [cond("service", "is_one_of", "billing")]),
    )
    assert evaluate(rs, alert(service="BILLING")).teams == ("payments",)


def test_evaluate_many_matches_evaluate() -> None:
    compiled = compile_ruleset(ISSUE_EXAMPLE)
    alerts = [alert(service="billing"), alert(service="x")]
    assert compiled.evaluate_many(alerts) == [compiled.evaluate(a) for a in alerts]
