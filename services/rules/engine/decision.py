"""The outcome of evaluating one alert against a ruleset."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RoutingDecision"]


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    """Where one alert goes. No teams means unrouted.

    A dataclass rather than a pydantic model: one is built per alert on the hot path.
    """

    teams: tuple[str, ...]
    """Destination teams in rule order, each once."""
    rule_ids: tuple[str, ...]
    """Ids of the rules that matched, in order."""
    rule_names: tuple[str, ...]
    ruleset_version: int
    fallback: bool
    """True when only fallback rules matched."""

    @property
    def routed(self) -> bool:
        return bool(self.teams)
