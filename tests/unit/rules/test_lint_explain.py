"""Static checks find dead rules; explain and test report what the evaluators decide."""

from __future__ import annotations

from services.rules.engine.explain import explain, run_cases
from services.rules.engine.lint import lint
from tests.unit.rules._build import alert, cond, rule, ruleset


def _kinds(findings: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(f["rule"], f["kind"]) for f in findings]


def test_rules_after_catch_all_are_unreachable() -> None:
    rs = ruleset(
        rule("payments-a", [cond("service", "equals", "billing")]),
        rule("platform-all"),
        rule("search-b", [cond("service", "equals", "search")]),
        rule("platform-fb", fallback=True),
    )
    findings = lint(rs)
    assert _kinds(findings) == [("search-b", "unreachable"), ("platform-fb", "unreachable")]
    assert findings[0]["by"] == "platform-all"


def test_continue_catch_all_does_not_hide_later_rules() -> None:
    rs = ruleset(
        rule("security-all", cont=True), rule("search-b", [cond("service", "equals", "x")])
    )
    assert lint(rs) == []


def test_shadowed_by_identical_or_wider_conditions() -> None:
    rs = ruleset(
        rule("payments-a", [cond("service", "is_one_of", "billing", "checkout")]),
        rule(
            "search-b",
            [cond("service", "equals", "billing"), cond("labels.env", "equals", "prod")],
        ),
        rule("search-c", [cond("service", "is_one_of", "billing", "search")]),
        rule("search-d", [cond("service", "is_one_of", "billing", "checkout")], cont=True),
    )
    assert _kinds(lint(rs)) == [("search-b", "shadowed"), ("search-d", "shadowed")]


def test_never_matching_and_disabled_and_unknown_teams() -> None:
    rs = ruleset(
        rule(
            "payments-a",
            [cond("service", "equals", "billing"), cond("service", "is_not_one_of", "billing")],
        ),
        rule("payments-b", [cond("service", "equals", "x")], enabled=False),
        rule("ghosts-c", [cond("service", "equals", "y")]),
    )
    kinds = _kinds(lint(rs, teams={"payments"}))
    assert kinds == [
        ("payments-a", "never_matches"),
        ("payments-b", "disabled"),
        ("ghosts-c", "unknown_team"),
    ]


def test_explain_reports_each_condition() -> None:
    rs = ruleset(
        rule(
            "payments-a",
            [cond("service", "equals", "billing"), cond("labels.env", "is_not_one_of", "dev")],
        ),
        rule("search-b", [cond("service", "is_one_of", "billing")], cont=True),
        rule("platform-c", [cond("service", "is_one_of", "billing")]),
        rule("security-d"),
        version=4,
    )
    out = explain(rs, alert(service="billing", labels={"env": "dev"}))
    assert out["teams"] == ["search", "platform"]
    assert [m["name"] for m in out["matched_rules"]] == ["search-b", "platform-c"]
    assert out["ruleset_version"] == 4
    first = out["evaluated"][0]
    assert first["name"] == "payments-a"
    assert not first["matched"]
    results = [(c["field"], c["value"], c["result"]) for c in first["groups"][0]["conditions"]]
    assert results == [("service", "billing", True), ("labels.env", "dev", False)]
    # Evaluation stopped at platform-c: security-d was never looked at.
    assert [e["name"] for e in out["evaluated"]] == ["payments-a", "search-b", "platform-c"]


def test_explain_missing_field_and_fallback() -> None:
    rs = ruleset(
        rule("payments-a", [cond("labels.team", "equals", "x")]), rule("p-fb", fallback=True)
    )
    out = explain(rs, alert())
    condition = out["evaluated"][0]["groups"][0]["conditions"][0]
    assert condition["missing"] is True
    assert condition["result"] is False
    assert out["fallback"] is True
    assert out["teams"] == ["p"]


def test_run_cases() -> None:
    rs = ruleset(rule("payments-a", [cond("service", "equals", "billing")]))
    report = run_cases(
        rs,
        [
            {
                "name": "billing",
                "alert": {"source": "t", "summary": "s", "service": "billing"},
                "expect_teams": ["payments"],
            },
            {
                "name": "other",
                "alert": {"source": "t", "summary": "s"},
                "expect_teams": ["payments"],
            },
        ],
    )
    assert not report["passed"]
    assert report["failed"] == 1
    assert [r["passed"] for r in report["results"]] == [True, False]
    assert report["results"][1]["teams"] == []
