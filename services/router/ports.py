"""What the router needs from the rules engine, as protocols.

The router depends on these shapes rather than on concrete classes so the data plane can be
exercised with any compiled ruleset (``services.rules.engine`` provides the real one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from services.rules.engine.scope import AlertSource
from shared.alert import AlertView

__all__ = ["CompiledRulesetView", "RoutingDecisionView", "RulesetSource"]


class RoutingDecisionView(Protocol):
    """Where one alert goes, as the compiled ruleset decided."""

    @property
    def teams(self) -> Sequence[str]: ...

    @property
    def rule_ids(self) -> Sequence[str]: ...

    @property
    def ruleset_version(self) -> int: ...

    @property
    def fallback(self) -> bool: ...


class CompiledRulesetView(Protocol):
    @property
    def version(self) -> int: ...

    def evaluate(self, alert: AlertView, source: AlertSource = ...) -> RoutingDecisionView: ...

    def evaluate_many(
        self, alerts: Iterable[AlertView], sources: Sequence[AlertSource] | None = None
    ) -> Sequence[RoutingDecisionView]:
        """One decision per alert, in order (the whole batch in one call); ``sources[i]``
        published ``alerts[i]`` and decides which team rules may see it."""
        ...


class RulesetSource(Protocol):
    """The live, in-memory ruleset (``LiveRuleset``): swapped when the stored version moves."""

    @property
    def current(self) -> CompiledRulesetView: ...

    @property
    def loaded(self) -> bool: ...
