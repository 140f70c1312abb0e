"""Static checks of a ruleset: rules that can never match, unreachable and shadowed rules,
(when the team list is known) destinations that are not teams, and (when it is known which
teams own alert sources) team rules whose team owns no source, which therefore never match.

The checks are syntactic and sound: a finding is always real, but not every dead rule is
found (e.g. two regexes that can never both match are not detected).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from services.rules.engine.model import Condition, Operator, Rule, RuleScope, Ruleset

__all__ = ["lint"]

_SET_POSITIVE = frozenset({Operator.is_one_of, Operator.equals})
_SET_NEGATIVE = frozenset({Operator.is_not_one_of, Operator.not_equals})
_MAX_SUBSET_FIELDS = 8


def _finding(rule: Rule, kind: str, message: str, **extra: Any) -> dict[str, Any]:
    severity = "error" if kind in ("unknown_team",) else "warning"
    return {
        "rule": rule.name,
        "rule_id": rule.id,
        "kind": kind,
        "severity": severity,
        "message": message,
        **extra,
    }


def _key(c: Condition) -> tuple[str, bool, str | None]:
    return (c.field, c.case_insensitive, c.on_missing.value if c.on_missing else None)


def _norm(c: Condition) -> frozenset[str]:
    return frozenset(v.casefold() for v in c.values) if c.case_insensitive else frozenset(c.values)


def _group_impossible(conditions: tuple[Condition, ...]) -> str | None:
    """Why no alert can satisfy all ``conditions`` at once, or None."""
    allowed: dict[tuple[str, bool], frozenset[str]] = {}
    banned: dict[tuple[str, bool], set[str]] = {}
    for c in conditions:
        slot = (c.field, c.case_insensitive)
        if c.operator in _SET_POSITIVE and c.on_missing is None:
            allowed[slot] = allowed.get(slot, _norm(c)) & _norm(c)
        elif c.operator in _SET_NEGATIVE:
            banned.setdefault(slot, set()).update(_norm(c))
    for slot, values in allowed.items():
        remaining = values - banned.get(slot, set())
        if not remaining:
            return f"conditions on {slot[0]!r} exclude every value"
    return None


def _covers(earlier: Condition, later: tuple[Condition, ...]) -> bool:
    """True when every alert that satisfies all of ``later`` satisfies ``earlier``."""
    for c in later:
        if _key(c) != _key(earlier):
            continue
        if c == earlier:
            return True
        if c.operator in _SET_POSITIVE and earlier.operator in _SET_POSITIVE:
            if _norm(c) <= _norm(earlier):
                return True
        elif (
            c.operator in _SET_NEGATIVE
            and earlier.operator in _SET_NEGATIVE
            and _norm(earlier) <= _norm(c)
        ):
            return True
    return False


_Earlier = dict[frozenset[str], list[tuple[Rule, tuple[Condition, ...]]]]
"""Groups of earlier stopping rules, keyed by the set of fields they test."""


def _shadowing(index: _Earlier, rule: Rule) -> Rule | None:
    """An earlier stopping rule that matches every alert ``rule`` matches, if any."""
    groups = [g.conditions for g in rule.condition_groups]
    if not groups:
        return None  # a catch-all is only shadowed by a catch-all, handled as unreachable
    shadow: Rule | None = None
    for conditions in groups:
        fields = sorted({c.field for c in conditions})
        if len(fields) > _MAX_SUBSET_FIELDS:
            return None
        found = None
        for size in range(1, len(fields) + 1):
            for subset in combinations(fields, size):
                for other, other_conditions in index.get(frozenset(subset), []):
                    if all(_covers(c, conditions) for c in other_conditions):
                        found = other if found is None or other.position < found.position else found
        if found is None:
            return None
        shadow = found if shadow is None or found.position > shadow.position else shadow
    return shadow


def lint(
    ruleset: Ruleset, *, teams: set[str] | None = None, source_owners: set[str] | None = None
) -> list[dict[str, Any]]:
    """Findings in rule order; ``teams`` enables the unknown-team check, ``source_owners``
    (teams owning at least one source: a team token or an assignment) the out-of-scope one."""
    findings: list[dict[str, Any]] = []
    for fallback_pass in (False, True):
        stopping: _Earlier = {}
        catch_all: Rule | None = None
        for rule in (r for r in ruleset.rules if r.fallback is fallback_pass):
            if not rule.enabled:
                findings.append(_finding(rule, "disabled", "rule is disabled and never evaluated"))
                continue
            if catch_all is not None:
                findings.append(
                    _finding(
                        rule,
                        "unreachable",
                        f"comes after catch-all rule {catch_all.name!r}, which stops evaluation",
                        by=catch_all.name,
                    )
                )
                continue
            impossible = [
                reason
                for g in rule.condition_groups
                if (reason := _group_impossible(g.conditions)) is not None
            ]
            if rule.condition_groups and len(impossible) == len(rule.condition_groups):
                findings.append(
                    _finding(rule, "never_matches", f"can never match: {impossible[0]}")
                )
                continue
            shadow = _shadowing(stopping, rule)
            if shadow is not None:
                findings.append(
                    _finding(
                        rule,
                        "shadowed",
                        f"every alert it matches is taken first by {shadow.name!r} "
                        "(which has no 'continue')",
                        by=shadow.name,
                    )
                )
            if not rule.continue_:
                if not rule.condition_groups:
                    catch_all = rule
                for group in rule.condition_groups:
                    fields = frozenset(c.field for c in group.conditions)
                    stopping.setdefault(fields, []).append((rule, group.conditions))
        if not fallback_pass and catch_all is not None:
            for rule in ruleset.rules:
                if rule.fallback and rule.enabled:
                    findings.append(
                        _finding(
                            rule,
                            "unreachable",
                            f"fallback never runs: catch-all rule {catch_all.name!r} matches "
                            "every alert",
                            by=catch_all.name,
                        )
                    )
            break
    if teams is not None:
        for rule in ruleset.rules:
            for team in dict.fromkeys([rule.owner_team, *rule.destinations]):
                if team not in teams:
                    findings.append(
                        _finding(rule, "unknown_team", f"team {team!r} does not exist", team=team)
                    )
    if source_owners is not None:
        for rule in ruleset.rules:
            if (
                rule.scope is RuleScope.team
                and rule.enabled
                and rule.owner_team not in source_owners
            ):
                findings.append(
                    _finding(
                        rule,
                        "out_of_scope",
                        f"can never match: team rule of {rule.owner_team!r}, which owns no alert "
                        "source (no team token, no source assigned to it)",
                        team=rule.owner_team,
                    )
                )
    positions = {rule.id: rule.position for rule in ruleset.rules}
    return sorted(findings, key=lambda f: positions[f["rule_id"]])
