"""Turning an inspected, authenticated batch into the records to publish.

Pure functions: no broker, no Redis. The consumer loop publishes what :func:`plan_batch` returns
and records the decisions once Kafka acknowledged them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from services.router import rejects
from services.router.authn import AuthOutcome
from services.router.intake import Inbound
from services.router.ports import CompiledRulesetView
from services.router.rejects import Rejection
from shared.alert import Alert
from shared.auth import Permission, Principal, TokenKind
from shared.headers import RejectedHeaders
from shared.settings import TopicSettings

__all__ = ["BatchPlan", "OutMessage", "PlannedAlert", "plan_batch", "routed_headers"]


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(slots=True)
class PlannedAlert:
    """An accepted alert, where it goes, and which messages of the plan carry it."""

    inbound: Inbound
    alert: Alert
    principal: Principal
    teams: tuple[str, ...]
    rule_ids: tuple[str, ...]
    ruleset_version: int
    fallback: bool
    message_indexes: list[int] = field(default_factory=list)

    @property
    def routed(self) -> bool:
        return bool(self.teams)


@dataclass(slots=True)
class BatchPlan:
    messages: list[OutMessage] = field(default_factory=list)
    accepted: list[PlannedAlert] = field(default_factory=list)
    rejected: list[tuple[Inbound, Rejection]] = field(default_factory=list)


def plan_batch(
    inbounds: Sequence[Inbound],
    auth: Mapping[str, AuthOutcome],
    ruleset: CompiledRulesetView,
    topics: TopicSettings,
) -> BatchPlan:
    """Decide every record of a batch, in order, into team / unrouted / rejected messages."""
    plan = BatchPlan()
    for inbound in inbounds:
        accepted = _accept(inbound, auth)
        if isinstance(accepted, Rejection):
            plan.rejected.append((inbound, accepted))
            plan.messages.append(_rejected_message(inbound, accepted, topics))
            continue
        alert, principal = accepted
        try:
            decision = ruleset.evaluate(alert)
        except Exception as exc:  # one alert must not stop the stream; it stays replayable
            rejection = Rejection.of(rejects.EVALUATION_ERROR, f"rule evaluation failed: {exc!r}")
            plan.rejected.append((inbound, rejection))
            plan.messages.append(_rejected_message(inbound, rejection, topics))
            continue
        planned = PlannedAlert(
            inbound=inbound,
            alert=alert,
            principal=principal,
            teams=tuple(dict.fromkeys(decision.teams)),
            rule_ids=tuple(decision.rule_ids),
            ruleset_version=decision.ruleset_version,
            fallback=decision.fallback,
        )
        # The producer's bytes go out untouched unless the router filled in or stamped a field.
        value = inbound.value if alert is inbound.alert else alert.to_bytes()
        key = alert.kafka_key()
        common = routed_headers(
            alert_id=alert.id,
            rule_ids=planned.rule_ids,
            ruleset_version=planned.ruleset_version,
            token_id=principal.token_id,
            source=(inbound.topic, inbound.partition, inbound.offset),
        )
        for team in planned.teams or ("",):
            topic = topics.team_topic(team) if team else topics.unrouted
            planned.message_indexes.append(len(plan.messages))
            headers = [*common, (_TEAM_HEADER, team.encode())]
            plan.messages.append(OutMessage(topic, key, value, headers))
        plan.accepted.append(planned)
    return plan


_TEAM_HEADER = "alertyard-team"


def routed_headers(
    *,
    alert_id: str,
    rule_ids: tuple[str, ...],
    ruleset_version: int,
    token_id: str,
    source: tuple[str, int, int],
) -> list[tuple[str, bytes]]:
    """:class:`RoutedHeaders` without the team header, built without a pydantic model.

    Equivalent to ``RoutedHeaders(...).to_kafka()`` (a unit test holds them equal); building
    the model costs more than the rest of the plan on the hot path. The caller adds the team.
    """
    topic, partition, offset = source
    return [
        ("alertyard-alert-id", alert_id.encode()),
        ("alertyard-rule-ids", ",".join(rule_ids).encode()),
        ("alertyard-ruleset-version", str(ruleset_version).encode()),
        ("alertyard-token-id", token_id.encode()),
        ("alertyard-source", f"{topic}/{partition}/{offset}".encode()),
    ]


def _accept(
    inbound: Inbound, auth: Mapping[str, AuthOutcome]
) -> tuple[Alert, Principal] | Rejection:
    if inbound.rejection is not None:
        return inbound.rejection
    if inbound.alert is None or inbound.token is None:  # inspect_record sets one or the other
        return Rejection.of(rejects.SCHEMA_VIOLATION, "message could not be read")
    outcome = auth[inbound.token]
    if not isinstance(outcome, Principal):
        return Rejection.of(outcome.code, outcome.detail)
    if not outcome.has(Permission.alerts_publish):
        return Rejection.of(
            rejects.PERMISSION_DENIED,
            f"token {outcome.token_id} lacks the {Permission.alerts_publish.value} permission",
        )
    alert = inbound.alert
    if outcome.kind is TokenKind.team and outcome.team and alert.team != outcome.team:
        # A team token speaks for its team only: the alert is stamped with it.
        alert = alert.model_copy(update={"team": outcome.team})
    return alert, outcome


def _rejected_message(inbound: Inbound, rejection: Rejection, topics: TopicSettings) -> OutMessage:
    headers = RejectedHeaders(
        reason=rejection.reason,
        detail=rejection.detail,
        source_topic=inbound.topic,
        source_partition=inbound.partition,
        source_offset=inbound.offset,
    )
    # The original bytes, untouched; the original headers are dropped (they hold the token).
    return OutMessage(topics.rejected, inbound.key, inbound.value, headers.to_kafka())
