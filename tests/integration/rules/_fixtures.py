"""Shared helpers for rules integration tests."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from services.rules.engine.model import Ruleset, parse_ruleset
from shared.teams import TEAMS_KEY

TEAMS = ("payments", "platform", "search", "security")


async def add_teams(redis: Redis, *teams: str) -> None:
    await redis.sadd(TEAMS_KEY, *(teams or TEAMS))


def simple_rule(name: str, team: str, service: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "owner_team": team,
        "destinations": [team],
        "condition_groups": [
            {"conditions": [{"field": "service", "operator": "is_one_of", "values": [service]}]}
        ],
        **extra,
    }


def two_team_ruleset() -> Ruleset:
    return parse_ruleset(
        {
            "rules": [
                simple_rule("payments-billing", "payments", "billing"),
                simple_rule("search-index", "search", "indexer"),
                {
                    "name": "fallback",
                    "owner_team": "platform",
                    "destinations": ["platform"],
                    "fallback": True,
                },
            ]
        }
    )
