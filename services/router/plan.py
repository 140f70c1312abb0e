"""Turning an inspected, authenticated batch into the records to publish.

Pure functions: no broker, no Redis. The consumer loop publishes what :func:`plan_batch` returns
and records the decisions once Kafka acknowledged them.

This runs once per record on the hot path, so the parts a batch shares (team topics, header
values of a team, rule list, ruleset version, token, source partition) are built once per batch
and reused; routed headers are plain tuples, never a pydantic model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from services.router import rejects
from services.router.authn import AuthOutcome
from services.router.intake import Inbound
from services.router.ports import CompiledRulesetView, RoutingDecisionView
from services.router.rejects import Rejection
from services.rules.engine.scope import UNKNOWN_SOURCE, AlertSource
from shared.alert import AlertView
from shared.alert_decode import as_model
from shared.auth import Permission, Principal, TokenKind
from shared.headers import PREFIX, RejectedHeaders
from shared.settings import TopicSettings

__all__ = ["BatchPlan", "OutMessage", "PlannedAlert", "plan_batch"]

Header = tuple[str, bytes]

_ALERT_ID = PREFIX + "alert-id"
_TEAM = PREFIX + "team"
_RULE_IDS = PREFIX + "rule-ids"
_RULESET_VERSION = PREFIX + "ruleset-version"
_TOKEN_ID = PREFIX + "token-id"
_SOURCE = PREFIX + "source"


class OutMessage(NamedTuple):
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[Header]


_new_message: Callable[
    [type[OutMessage], tuple[str, bytes | None, bytes, list[Header]]], OutMessage
]
_new_message = tuple.__new__  # a NamedTuple's own __new__ costs 0.5 us per record


@dataclass(slots=True)
class PlannedAlert:
    """An accepted alert, where it goes, and which messages of the plan carry it."""

    inbound: Inbound
    alert: AlertView
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
    copies_by_team: dict[str, int] = field(default_factory=dict)
    """Routed copies per destination team (for the metrics and the batch log line)."""
    unrouted: int = 0

    @property
    def topics(self) -> set[str]:
        """Every topic this plan publishes to."""
        return {m.topic for m in self.messages}


def plan_batch(
    inbounds: Sequence[Inbound],
    auth: Mapping[str, AuthOutcome],
    ruleset: CompiledRulesetView,
    topics: TopicSettings,
) -> BatchPlan:
    """Decide every record of a batch, in order, into team / unrouted / rejected messages."""
    verdicts = _admit(inbounds, auth)
    alerts: list[AlertView] = []
    principals: list[Principal] = []
    for verdict in verdicts:
        if not isinstance(verdict, Rejection):
            alerts.append(verdict[0])
            principals.append(verdict[1])
    decisions = _evaluate(ruleset, alerts, _sources(principals))
    plan = BatchPlan()
    messages, accepted = plan.messages, plan.accepted
    new_message = _new_message
    shared = _SharedParts(topics)
    # Alerts with the same input share one decision object (evaluate_many), so everything
    # derived from a decision is built once per distinct decision; ``decisions`` keeps the
    # objects alive, so their ids stay unique for the whole loop.
    routes: dict[int, _Route] = {}
    # A batch is runs of one partition and of one producer's token: their headers are reused.
    last_topic, last_partition, prefix = "", -1, b""
    last_principal: Principal | None = None
    token: Header = (_TOKEN_ID, b"")
    next_decision = iter(decisions).__next__
    for inbound, verdict in zip(inbounds, verdicts, strict=True):
        if isinstance(verdict, Rejection):
            _reject(plan, inbound, verdict, topics)
            continue
        alert, principal = verdict
        decision = next_decision()
        if isinstance(decision, Rejection):
            _reject(plan, inbound, decision, topics)
            continue
        route = routes.get(id(decision))
        if route is None:
            route = routes[id(decision)] = shared.route(decision)
        route.alerts += 1
        # The producer's bytes go out untouched unless the router filled in or stamped a field.
        untouched = alert is inbound.alert and not inbound.rewritten
        value = inbound.value if untouched else as_model(alert).to_bytes()
        key = alert.kafka_key()
        alert_id = (_ALERT_ID, alert.id.encode())
        rules, version = route.rules, route.version
        if principal is not last_principal:
            token, last_principal = shared.token(principal.token_id), principal
        if inbound.partition != last_partition or inbound.topic != last_topic:
            last_topic, last_partition = inbound.topic, inbound.partition
            prefix = shared.source_prefix(last_topic, last_partition)
        source = (_SOURCE, b"%b%d" % (prefix, inbound.offset))
        first = len(messages)
        for topic, team_header in route.targets:
            headers = [alert_id, team_header, rules, version, token, source]
            messages.append(new_message(OutMessage, (topic, key, value, headers)))
        accepted.append(
            PlannedAlert(
                inbound,
                alert,
                principal,
                route.teams,
                route.rule_ids,
                route.ruleset_version,
                route.fallback,
                list(range(first, len(messages))),
            )
        )
    copies = plan.copies_by_team
    for route in routes.values():
        if not route.teams:
            plan.unrouted += route.alerts
        for team in route.teams:
            copies[team] = copies.get(team, 0) + route.alerts
    return plan


@dataclass(slots=True)
class _Route:
    """What one decision of a batch turns into, for every alert that shares it."""

    teams: tuple[str, ...]
    rule_ids: tuple[str, ...]
    ruleset_version: int
    fallback: bool
    targets: tuple[tuple[str, Header], ...]
    """(topic, team header) per copy; the unrouted topic once for no team."""
    rules: Header
    version: Header
    alerts: int = 0
    """Alerts of the batch with this decision."""


class _SharedParts:
    """Header values and topics that repeat within a batch, each built once."""

    __slots__ = ("_rules", "_teams", "_teamsets", "_tokens", "_topics", "_versions")

    def __init__(self, topics: TopicSettings) -> None:
        self._topics = topics
        self._teams: dict[str, tuple[str, Header]] = {}
        self._teamsets: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._rules: dict[tuple[str, ...], Header] = {}
        self._versions: dict[int, Header] = {}
        self._tokens: dict[str, Header] = {}

    no_team: Header = (_TEAM, b"")

    def route(self, decision: RoutingDecisionView) -> _Route:
        teams = self.teams(decision.teams)
        rule_ids = tuple(decision.rule_ids)
        targets = (
            tuple(self.team(team) for team in teams)
            if teams
            else ((self._topics.unrouted, self.no_team),)
        )
        return _Route(
            teams,
            rule_ids,
            decision.ruleset_version,
            decision.fallback,
            targets,
            self.rule_ids(rule_ids),
            self.version(decision.ruleset_version),
        )

    def teams(self, teams: Sequence[str]) -> tuple[str, ...]:
        """The destinations without repeats, in order."""
        key = tuple(teams)
        found = self._teamsets.get(key)
        if found is None:
            found = self._teamsets[key] = tuple(dict.fromkeys(key))
        return found

    def team(self, team: str) -> tuple[str, Header]:
        found = self._teams.get(team)
        if found is None:
            found = self._teams[team] = (self._topics.team_topic(team), (_TEAM, team.encode()))
        return found

    def rule_ids(self, rule_ids: tuple[str, ...]) -> Header:
        found = self._rules.get(rule_ids)
        if found is None:
            found = self._rules[rule_ids] = (_RULE_IDS, ",".join(rule_ids).encode())
        return found

    def version(self, version: int) -> Header:
        found = self._versions.get(version)
        if found is None:
            found = self._versions[version] = (_RULESET_VERSION, str(version).encode())
        return found

    def token(self, token_id: str) -> Header:
        found = self._tokens.get(token_id)
        if found is None:
            found = self._tokens[token_id] = (_TOKEN_ID, token_id.encode())
        return found

    @staticmethod
    def source_prefix(topic: str, partition: int) -> bytes:
        """The source header's value up to the offset: ``topic/partition/``."""
        return f"{topic}/{partition}/".encode()


def _sources(principals: Iterable[Principal]) -> list[AlertSource]:
    """Each alert's source (its authenticated token), one object per token in the batch."""
    by_token: dict[str, AlertSource] = {}
    sources = []
    last: Principal | None = None
    source = UNKNOWN_SOURCE
    for principal in principals:
        if principal is not last:  # a batch is mostly runs of one producer's token
            source = by_token.get(principal.token_id) or by_token.setdefault(
                principal.token_id, AlertSource.of(principal)
            )
            last = principal
        sources.append(source)
    return sources


def _evaluate(
    ruleset: CompiledRulesetView, alerts: list[AlertView], sources: list[AlertSource]
) -> list[RoutingDecisionView | Rejection]:
    """Evaluate the batch in one call; if that raises, find the culprits one by one."""
    try:
        return list(ruleset.evaluate_many(alerts, sources))
    except Exception:
        return [
            _evaluate_one(ruleset, alert, source)
            for alert, source in zip(alerts, sources, strict=True)
        ]


def _evaluate_one(
    ruleset: CompiledRulesetView, alert: AlertView, source: AlertSource
) -> RoutingDecisionView | Rejection:
    try:
        return ruleset.evaluate(alert, source)
    except Exception as exc:  # one alert must not stop the stream; it stays replayable
        return Rejection.of(rejects.EVALUATION_ERROR, f"rule evaluation failed: {exc!r}")


def _admit(
    inbounds: Sequence[Inbound], auth: Mapping[str, AuthOutcome]
) -> list[tuple[AlertView, Principal] | Rejection]:
    """Each record's alert and principal, or why it is rejected; a token is judged once."""
    judged: dict[str, Principal | Rejection] = {}
    verdicts: list[tuple[AlertView, Principal] | Rejection] = []
    for inbound in inbounds:
        if inbound.rejection is not None:
            verdicts.append(inbound.rejection)
            continue
        alert, token = inbound.alert, inbound.token
        if alert is None or token is None:  # inspect_record sets one or the other
            verdicts.append(Rejection.of(rejects.SCHEMA_VIOLATION, "message could not be read"))
            continue
        judgement = judged.get(token)
        if judgement is None:
            judgement = judged[token] = _judge(auth[token])
        if isinstance(judgement, Rejection):
            verdicts.append(judgement)
            continue
        team = judgement.team
        if team and judgement.kind is TokenKind.team and alert.team != team:
            # A team token speaks for its team only: the alert is stamped with it.
            alert = as_model(alert).model_copy(update={"team": team})
        verdicts.append((alert, judgement))
    return verdicts


def _judge(outcome: AuthOutcome) -> Principal | Rejection:
    """The principal when its token may publish alerts, else why not."""
    if not isinstance(outcome, Principal):
        return Rejection.of(outcome.code, outcome.detail)
    if not outcome.has(Permission.alerts_publish):
        return Rejection.of(
            rejects.PERMISSION_DENIED,
            f"token {outcome.token_id} lacks the {Permission.alerts_publish.value} permission",
        )
    return outcome


def _reject(plan: BatchPlan, inbound: Inbound, rejection: Rejection, topics: TopicSettings) -> None:
    plan.rejected.append((inbound, rejection))
    headers = RejectedHeaders(
        reason=rejection.reason,
        detail=rejection.detail,
        source_topic=inbound.topic,
        source_partition=inbound.partition,
        source_offset=inbound.offset,
    )
    # The original bytes, untouched; the original headers are dropped (they hold the token).
    plan.messages.append(
        OutMessage(topics.rejected, inbound.key, inbound.value, headers.to_kafka())
    )
