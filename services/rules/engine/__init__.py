"""The pure rules engine: model, compiled and reference evaluators, explain, lint, diff, documents.

No I/O here: the router compiles with :func:`compile_ruleset`, the CLI and the control plane
(:mod:`services.rules.control`) parse, explain, lint and diff with the same code.
"""

from services.rules.engine.compiled import CompiledRuleset, compile_ruleset
from services.rules.engine.decision import RoutingDecision
from services.rules.engine.model import (
    Condition,
    ConditionGroup,
    OnMissing,
    Operator,
    Rule,
    RuleScope,
    Ruleset,
    parse_rule,
    parse_ruleset,
)
from services.rules.engine.scope import AlertSource

__all__ = [
    "AlertSource",
    "CompiledRuleset",
    "Condition",
    "ConditionGroup",
    "OnMissing",
    "Operator",
    "RoutingDecision",
    "Rule",
    "RuleScope",
    "Ruleset",
    "compile_ruleset",
    "parse_rule",
    "parse_ruleset",
]
