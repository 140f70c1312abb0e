"""Who may change which rules.

Admins (global tokens, owner/admin users) may change anything. Everyone else may only touch
rules they can *manage*: the owner team and every destination are teams they manage, before
and after the change. A non-admin must also not put rules in front of rules they cannot
manage (that would take alerts away from another team): such a rule may lose predecessors,
never gain one. Everything else is a 403 and nothing changes.
"""

from __future__ import annotations

from services.rules.engine.model import Rule, Ruleset
from shared.auth import Principal
from shared.errors import ForbiddenError

__all__ = ["authorize_change", "may_manage"]


def may_manage(principal: Principal, rule: Rule) -> bool:
    """True when ``principal`` may change ``rule`` as it stands."""
    if principal.is_admin:
        return True
    return principal.may_manage_team(rule.owner_team) and all(
        principal.may_manage_team(team) for team in rule.destinations
    )


def authorize_change(principal: Principal, before: Ruleset, after: Ruleset) -> None:
    """Raise :class:`ForbiddenError` unless ``principal`` may turn ``before`` into ``after``."""
    if principal.is_admin:
        return
    old = {rule.id: rule for rule in before.rules}
    new = {rule.id: rule for rule in after.rules}
    for rule_id in old.keys() | new.keys():
        was, now = old.get(rule_id), new.get(rule_id)
        if was is not None and now is not None and was.same_content(now):
            continue
        for state in (was, now):
            if state is not None and not may_manage(principal, state):
                raise ForbiddenError(
                    f"rule {state.name!r} belongs to team {state.owner_team!r} or routes to "
                    "teams this token does not manage",
                    rule=state.name,
                )
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
