"""Decisions to write to the decision store in tests, as the router records them."""

from __future__ import annotations

from datetime import datetime

from services.router.decisions import Decision, Placement

__all__ = ["decision_for"]


def decision_for(
    alert_id: str, team: str | None, at: datetime, *, status: str = "firing", offset: int = 1
) -> Decision:
    """One copy to ``team``'s topic, or an unrouted decision without a team; ``offset`` is the
    alert's source offset and its copy's."""
    return Decision(
        alert_id=alert_id,
        outcome="routed" if team else "unrouted",
        alert_status=status,
        severity="warning",
        dedup_key=f"d-{alert_id}",
        teams=(team,) if team else (),
        rule_ids=("r1",) if team else (),
        ruleset_version=2,
        fallback=False,
        token_id="tok-producer",
        received_at=at,
        routed_at=at,
        source_topic="alerts",
        source_partition=0,
        source_offset=offset,
        published=(Placement(topic=f"alerts.team.{team or 'none'}", partition=0, offset=offset),),
    )
