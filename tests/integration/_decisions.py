"""A routed decision to write to the decision store in tests (one copy to its team's topic)."""

from __future__ import annotations

from datetime import datetime

from services.router.decisions import Decision, Placement

__all__ = ["routed_decision"]


def routed_decision(alert_id: str, team: str, at: datetime) -> Decision:
    return Decision(
        alert_id=alert_id,
        outcome="routed",
        alert_status="firing",
        severity="error",
        dedup_key=alert_id,
        teams=(team,),
        rule_ids=("r1",),
        ruleset_version=1,
        fallback=False,
        token_id="tok_1",
        received_at=at,
        routed_at=at,
        source_topic="alerts",
        source_partition=0,
        source_offset=1,
        published=(Placement(topic=f"alerts.team.{team}", partition=0, offset=1),),
    )
