"""``explain``: why an alert goes where it goes, condition by condition.

Built on the reference evaluator (explain is not on the hot path and must be obviously right);
the decision it reports is checked against the same semantics the compiled evaluator follows.
"""

from __future__ import annotations

from typing import Any

from services.rules.engine import reference
from services.rules.engine.documents import parse_alert
from services.rules.engine.fields import resolve
from services.rules.engine.model import Rule, Ruleset
from services.rules.engine.scope import (
    UNKNOWN_SOURCE,
    AlertSource,
    in_scope,
    out_of_scope,
    owners_of,
)
from shared.alert import AlertView

__all__ = ["explain", "run_cases", "source_of"]


def _explain_rule(rule: Rule, alert: AlertView) -> dict[str, Any]:
    groups = []
    for group in rule.condition_groups:
        conditions = []
        for condition in group.conditions:
            value = resolve(alert, condition.field)
            conditions.append(
                {
                    "field": condition.field,
                    "operator": condition.operator.value,
                    "values": list(condition.values),
                    "case_insensitive": condition.case_insensitive,
                    "on_missing": condition.on_missing.value if condition.on_missing else None,
                    "value": value,
                    "missing": value is None,
                    "result": reference.condition_holds(condition, alert),
                }
            )
        groups.append({"matched": all(c["result"] for c in conditions), "conditions": conditions})
    return {
        "id": rule.id,
        "name": rule.name,
        "position": rule.position,
        "fallback": rule.fallback,
        "continue": rule.continue_,
        "destinations": list(rule.destinations),
        "matched": reference.rule_matches(rule, alert),
        "catch_all": not rule.condition_groups,
        "groups": groups,
    }


def explain(
    ruleset: Ruleset, alert: AlertView, source: AlertSource = UNKNOWN_SOURCE
) -> dict[str, Any]:
    """The decision plus every rule evaluated to reach it, in order, with condition results,
    and the team rules that were out of scope for the alert's source (with the reason)."""
    decision = reference.evaluate(ruleset, alert, source)
    owners = owners_of(ruleset, source)
    enabled = [rule for rule in ruleset.rules if rule.enabled and in_scope(rule, owners)]
    skipped = [
        {"id": rule.id, "name": rule.name, "owner_team": rule.owner_team, "reason": reason}
        for rule in ruleset.rules
        if rule.enabled and (reason := out_of_scope(rule, source, owners)) is not None
    ]
    evaluated: list[dict[str, Any]] = []
    for fallback_pass in (False, True):
        if fallback_pass and decision.rule_ids and not decision.fallback:
            break
        for rule in (r for r in enabled if r.fallback is fallback_pass):
            entry = _explain_rule(rule, alert)
            evaluated.append(entry)
            if entry["matched"] and not rule.continue_:
                break
    return {
        "teams": list(decision.teams),
        "routed": decision.routed,
        "fallback": decision.fallback,
        "matched_rules": [
            {"id": rule_id, "name": name}
            for rule_id, name in zip(decision.rule_ids, decision.rule_names, strict=True)
        ],
        "ruleset_version": ruleset.version,
        "source": {
            "token_id": source.token_id,
            "team": source.team,
            "owners": sorted(owners),
        },
        "evaluated": evaluated,
        "out_of_scope": skipped,
    }


def source_of(data: Any) -> AlertSource:
    """An :class:`AlertSource` from ``{"token_id": ..., "team": ...}`` (absent: unknown)."""
    if not isinstance(data, dict):
        return UNKNOWN_SOURCE
    token_id, team = data.get("token_id"), data.get("team")
    return AlertSource(
        token_id=token_id if isinstance(token_id, str) else None,
        team=team if isinstance(team, str) else None,
    )


def run_cases(ruleset: Ruleset, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Run ``test`` cases ``{name, alert, expect_teams, source?}``; ``passed`` is True when all
    pass. ``source`` (``{"token_id", "team"}``) says who published the alert (tenancy).

    Teams are compared in order (the order is the order alerts are published in).
    """
    results = []
    for number, case in enumerate(cases):
        name = str(case.get("name") or f"case-{number}")
        alert = parse_alert(case["alert"], where=f"case {name!r}")
        expected = list(case.get("expect_teams") or [])
        decision = reference.evaluate(ruleset, alert, source_of(case.get("source")))
        results.append(
            {
                "name": name,
                "passed": list(decision.teams) == expected,
                "expected_teams": expected,
                "teams": list(decision.teams),
                "matched_rules": list(decision.rule_names),
                "fallback": decision.fallback,
            }
        )
    return {
        "passed": all(r["passed"] for r in results),
        "total": len(results),
        "failed": sum(not r["passed"] for r in results),
        "ruleset_version": ruleset.version,
        "results": results,
    }
