"""Who may change which rules.

Admins (global tokens, owner/admin users) may change anything. Everyone else may only touch
rules they can *manage*: team-scoped rules (see :mod:`services.rules.engine.scope`) whose owner
team and every destination are teams they manage, before and after the change. Org rules and
source assignments are the admins' alone: they decide where alerts of other sources go.
A non-admin must also not put rules in front of rules they cannot
manage (that would take alerts away from another team): such a rule may lose predecessors,
never gain one. Everything else is a 403 and nothing changes.
"""

from __future__ import annotations

from typing import Any

from services.rules.engine.model import Rule, RuleScope, Ruleset
from shared.auth import Principal
from shared.errors import ForbiddenError

__all__ = ["authorize_change", "default_scope", "fill_scopes", "may_manage"]


def default_scope(principal: Principal) -> RuleScope:
    """The scope of a new rule that does not state one: org for admins, team for the rest."""
    return RuleScope.org if principal.is_admin else RuleScope.team


def fill_scopes(raw_rules: list[Any], stored: Ruleset, principal: Principal) -> list[Any]:
    """``raw_rules`` with ``scope`` filled in where absent: the stored rule's (same id, else
    same name), or :func:`default_scope` for a new rule. Editing a rule without naming its
    scope never changes it."""
    filled: list[Any] = []
    for raw in raw_rules:
        if isinstance(raw, dict) and "scope" not in raw:
            stored_rule = None
            if isinstance(raw.get("id"), str):
                stored_rule = stored.by_id(raw["id"])
            if stored_rule is None and isinstance(raw.get("name"), str):
                stored_rule = stored.by_name(raw["name"])
            scope = stored_rule.scope if stored_rule else default_scope(principal)
            raw = {**raw, "scope": scope.value}
        filled.append(raw)
    return filled


def may_manage(principal: Principal, rule: Rule) -> bool:
    """True when ``principal`` may change ``rule`` as it stands."""
    if principal.is_admin:
        return True
    if rule.scope is not RuleScope.team:
        return False  # an org rule sees every source's alerts
    return principal.may_manage_team(rule.owner_team) and all(
        principal.may_manage_team(team) for team in rule.destinations
    )


def authorize_change(principal: Principal, before: Ruleset, after: Ruleset) -> None:
    """Raise :class:`ForbiddenError` unless ``principal`` may turn ``before`` into ``after``."""
    if principal.is_admin:
        return
    if before.sources != after.sources:
        raise ForbiddenError(
            "only admins assign alert sources to teams (it decides whose rules see them)"
        )
    old = {rule.id: rule for rule in before.rules}
    new = {rule.id: rule for rule in after.rules}
    for rule_id in old.keys() | new.keys():
        was, now = old.get(rule_id), new.get(rule_id)
        if was is not None and now is not None and was.same_content(now):
            continue
        for state in (was, now):
            if state is not None and not may_manage(principal, state):
                raise ForbiddenError(_refusal(state), rule=state.name)
    _check_no_new_predecessors(principal, old, after)


def _check_no_new_predecessors(principal: Principal, old: dict[str, Rule], after: Ruleset) -> None:
    # Walking the new order, every rule before a foreign rule must already have been before it:
    # the largest old position seen so far must stay below the foreign rule's old position.
    highest_before = -1
    for rule in after.rules:
        was = old.get(rule.id)
        old_position = was.position if was is not None else len(old) + 1
        if was is not None and not may_manage(principal, was) and highest_before > was.position:
            raise ForbiddenError(
                f"this change would put rules in front of {rule.name!r}, which this token does "
                "not manage; ask an admin to reorder across teams",
                rule=rule.name,
            )
        highest_before = max(highest_before, old_position)


def _refusal(rule: Rule) -> str:
    if rule.scope is not RuleScope.team:
        return (
            f"rule {rule.name!r} is an org rule (scope org): only admins change org rules; "
            "team members write team rules (scope team)"
        )
    return (
        f"rule {rule.name!r} belongs to team {rule.owner_team!r} or routes to teams this "
        "token does not manage"
    )
