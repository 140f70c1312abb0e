"""The reference evaluator: a direct reading of the semantics, slow and obviously correct.

It is the test oracle for the compiled evaluator and the engine behind ``explain``.

Semantics, in order:

1. Ordinary rules (not ``fallback``), enabled, in position order. A rule matches when any of its
   condition groups matches (no groups: every alert). A group matches when all its conditions
   hold. The first matching rule ends evaluation unless it has ``continue``.
2. Only when no ordinary rule matched: the fallback rules, with the same rules of order.
3. Destinations of the matched rules, in order, each team once. None: the alert is unrouted.

Before all that, team-scoped rules whose owner team does not own the alert's source are
removed (:mod:`.scope`): for that alert they do not exist, in either pass.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from services.rules.engine.decision import RoutingDecision
from services.rules.engine.fields import resolve
from services.rules.engine.model import Condition, Operator, Rule, Ruleset, compile_regex
from services.rules.engine.scope import UNKNOWN_SOURCE, AlertSource, in_scope, owners_of
from shared.alert import AlertView

__all__ = ["condition_holds", "evaluate", "rule_matches"]


@lru_cache(maxsize=4096)
def _regex(pattern: str, case_insensitive: bool) -> Any:
    return compile_regex(pattern, case_insensitive=case_insensitive)


def _positive(condition: Condition, value: str) -> bool:
    """The operator's positive form on a present value."""
    op = condition.operator
    if op is Operator.is_empty:
        return value == ""
    if op is Operator.exists:
        return True
    if op in (Operator.matches_regex, Operator.not_matches_regex):
        return _regex(condition.values[0], condition.case_insensitive).fullmatch(value) is not None
    operands = list(condition.values)
    if condition.case_insensitive:
        value = value.casefold()
        operands = [operand.casefold() for operand in operands]
    if op in (Operator.is_one_of, Operator.is_not_one_of, Operator.equals, Operator.not_equals):
        return value in operands
    if op in (Operator.contains, Operator.does_not_contain):
        return any(operand in value for operand in operands)
    if op is Operator.starts_with:
        return any(value.startswith(operand) for operand in operands)
    if op is Operator.ends_with:
        return any(value.endswith(operand) for operand in operands)
    raise AssertionError(f"unhandled operator {op}")


def condition_holds(condition: Condition, alert: AlertView) -> bool:
    value = resolve(alert, condition.field)
    if value is None:
        return condition.result_on_missing()
    positive = _positive(condition, value)
    return not positive if condition.negative else positive


def rule_matches(rule: Rule, alert: AlertView) -> bool:
    if not rule.condition_groups:
        return True
    return any(
        all(condition_holds(condition, alert) for condition in group.conditions)
        for group in rule.condition_groups
    )


def _pass(rules: list[Rule], alert: AlertView) -> list[Rule]:
    matched: list[Rule] = []
    for rule in rules:
        if rule_matches(rule, alert):
            matched.append(rule)
            if not rule.continue_:
                break
    return matched


def evaluate(
    ruleset: Ruleset, alert: AlertView, source: AlertSource = UNKNOWN_SOURCE
) -> RoutingDecision:
    """Where ``alert``, published by ``source``, goes under ``ruleset``."""
    owners = owners_of(ruleset, source)
    enabled = [rule for rule in ruleset.rules if rule.enabled and in_scope(rule, owners)]
    matched = _pass([rule for rule in enabled if not rule.fallback], alert)
    fallback = False
    if not matched:
        matched = _pass([rule for rule in enabled if rule.fallback], alert)
        fallback = bool(matched)
    teams: list[str] = []
    for rule in matched:
        for team in rule.destinations:
            if team not in teams:
                teams.append(team)
    return RoutingDecision(
        teams=tuple(teams),
        rule_ids=tuple(rule.id for rule in matched),
        rule_names=tuple(rule.name for rule in matched),
        ruleset_version=ruleset.version,
        fallback=fallback,
    )
