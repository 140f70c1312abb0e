"""Team routing rules: model, evaluators, versioned Redis store, HTTP API, lint and explain.

The router's data plane needs only :func:`compile_ruleset` / :class:`CompiledRuleset` and
:class:`LiveRuleset` (in :mod:`.store`); everything else is the control plane.
"""

from services.router.rules.compiled import CompiledRuleset, compile_ruleset
from services.router.rules.decision import RoutingDecision
from services.router.rules.model import (
    Condition,
    ConditionGroup,
    OnMissing,
    Operator,
    Rule,
    Ruleset,
    parse_rule,
    parse_ruleset,
)

__all__ = [
    "CompiledRuleset",
    "Condition",
    "ConditionGroup",
    "OnMissing",
    "Operator",
    "RoutingDecision",
    "Rule",
    "Ruleset",
    "compile_ruleset",
    "parse_rule",
    "parse_ruleset",
]
