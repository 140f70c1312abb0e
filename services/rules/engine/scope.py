"""Tenancy: which teams own an alert's source, and which rules may therefore see the alert.

An alert's *source* is the token it was published with, as the router authenticated it, never
a field of the alert (the producer writes those). The teams that own a source are:

* the token's team, for a team token;
* the teams an admin assigned the token id to (``Ruleset.sources``), e.g. a global token of a
  monitoring system that only one team's services use.

An org-scoped rule sees every alert. A team-scoped rule is only a candidate for alerts whose
source its ``owner_team`` owns; for every other alert it does not exist. So nothing a team writes
in team rules can change where another source's alerts go, the fallback included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from services.rules.engine.model import Rule, RuleScope, Ruleset
from shared.auth import Principal, TokenKind

__all__ = ["NO_OWNERS", "UNKNOWN_SOURCE", "AlertSource", "in_scope", "out_of_scope", "owners_of"]

NO_OWNERS: Final[frozenset[str]] = frozenset()


@dataclass(frozen=True, slots=True)
class AlertSource:
    """Who published an alert, as far as ownership is concerned."""

    token_id: str | None = None
    """The producer's token id (never the secret)."""
    team: str | None = None
    """The team of a team token: a team owns what its own tokens publish."""

    @classmethod
    def of(cls, principal: Principal) -> AlertSource:
        team = principal.team if principal.kind is TokenKind.team else None
        return cls(token_id=principal.token_id, team=team)


UNKNOWN_SOURCE: Final = AlertSource()
"""No known publisher (e.g. a replayed record): only org rules apply."""


def owners_of(ruleset: Ruleset, source: AlertSource) -> frozenset[str]:
    """The teams that own ``source`` under ``ruleset``'s assignments."""
    assigned = ruleset.sources.get(source.token_id, ()) if source.token_id else ()
    if source.team is None:
        return frozenset(assigned) if assigned else NO_OWNERS
    return frozenset((*assigned, source.team))


def in_scope(rule: Rule, owners: frozenset[str]) -> bool:
    """True when ``rule`` may see an alert whose source ``owners`` own."""
    return rule.scope is RuleScope.org or rule.owner_team in owners


def out_of_scope(rule: Rule, source: AlertSource, owners: frozenset[str]) -> str | None:
    """Why ``rule`` does not see an alert from ``source``, or None when it does."""
    if in_scope(rule, owners):
        return None
    who = f"token {source.token_id}" if source.token_id else "an unknown publisher"
    owned = f"owned by {', '.join(sorted(owners))}" if owners else "owned by no team"
    return (
        f"team rule of {rule.owner_team!r}: it only sees alerts from sources that team owns; "
        f"this alert comes from {who}, {owned}"
    )
