"""Small builders for rules and alerts in tests."""

from __future__ import annotations

from typing import Any

from services.rules.engine.model import Ruleset, parse_ruleset
from shared.alert import Alert


def cond(field: str, operator: str, *values: str, **extra: Any) -> dict[str, Any]:
    return {"field": field, "operator": operator, "values": list(values), **extra}


def rule(
    name: str, *groups: list[dict[str, Any]], dest: str = "", cont: bool = False, **extra: Any
) -> dict[str, Any]:
    team = dest or name.split("-")[0]
    return {
        "continue": cont,
        "name": name,
        "owner_team": team,
        "destinations": [team],
        "condition_groups": [{"conditions": group} for group in groups],
        **extra,
    }


def ruleset(*rules: dict[str, Any], version: int = 1) -> Ruleset:
    return parse_ruleset({"rules": list(rules)}, version=version)


def alert(**fields: Any) -> Alert:
    base: dict[str, Any] = {"source": "test", "summary": "disk full"}
    return Alert.model_validate({**base, **fields})
