from __future__ import annotations

import json

from services.router.authn import AuthOutcome
from services.router.intake import Inbound, inspect_record
from services.router.plan import plan_batch
from services.rules.engine.compiled import compile_ruleset
from services.rules.engine.model import parse_ruleset
from services.rules.engine.scope import UNKNOWN_SOURCE, AlertSource
from shared.alert import Alert, AlertView
from shared.auth import Permission, TokenKind
from shared.headers import RejectedHeaders, RoutedHeaders
from shared.settings import TopicSettings
from tests.unit.router._doubles import ByServiceRuleset, TokenInvalidError, principal

TOPICS = TopicSettings(team_prefix="t.team.", unrouted="t.unrouted", rejected="t.rejected")
RULES = ByServiceRuleset({"db": ("dba", "sre"), "web": ("frontend",)})


def record(
    value: dict[str, object] | bytes,
    token: str = "good",  # noqa: S107 - a test token name
    offset: int = 0,
) -> Inbound:
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    headers = [("authorization", f"Bearer {token}".encode())]
    return inspect_record("alerts", 0, offset, b"key", body, headers, 1_700_000_000_000)


def alert(service: str, **extra: object) -> dict[str, object]:
    return {"source": "prom", "summary": f"{service} down", "service": service, **extra}


def test_fan_out_unrouted_and_rejected_in_one_batch() -> None:
    inbounds = [
        record(alert("db", id="a1", dedup_key="dk1"), offset=0),
        record(alert("nope", id="a2"), offset=1),
        record(b"{broken", offset=2),
        record(alert("web", id="a3"), token="revoked", offset=3),
    ]
    auth: dict[str, AuthOutcome] = {
        "good": principal("tok-good"),
        "revoked": TokenInvalidError("token was revoked"),
    }
    plan = plan_batch(inbounds, auth, RULES, TOPICS)
    topics = [m.topic for m in plan.messages]
    assert topics == ["t.team.dba", "t.team.sre", "t.unrouted", "t.rejected", "t.rejected"]
    first = RoutedHeaders.from_kafka(plan.messages[0].headers)
    assert (first.alert_id, first.team, first.token_id, first.ruleset_version) == (
        "a1",
        "dba",
        "tok-good",
        7,
    )
    assert (first.source_topic, first.source_partition, first.source_offset) == ("alerts", 0, 0)
    assert plan.messages[0].key == b"dk1"
    assert Alert.model_validate_json(plan.messages[1].value).id == "a1"
    unrouted = RoutedHeaders.from_kafka(plan.messages[2].headers)
    assert unrouted.team == ""
    assert unrouted.rule_ids == ()
    reasons = [RejectedHeaders.from_kafka(m.headers).reason for m in plan.messages[3:]]
    assert reasons == ["invalid_json", "token_revoked"]
    assert plan.messages[3].value == b"{broken"  # original bytes, untouched
    assert all(k != "authorization" for m in plan.messages for k, _ in m.headers)
    assert [p.alert.id for p in plan.accepted] == ["a1", "a2"]
    assert plan.accepted[0].message_indexes == [0, 1]


def test_missing_publish_permission_is_rejected() -> None:
    reader = principal("tok-r", permissions=frozenset({Permission.alerts_read}))
    plan = plan_batch([record(alert("db"))], {"good": reader}, RULES, TOPICS)
    rejected = RejectedHeaders.from_kafka(plan.messages[0].headers)
    assert rejected.reason == "permission_denied"
    assert "tok-r" in rejected.detail


def test_team_token_stamps_its_team_over_whatever_was_sent() -> None:
    team_token = principal("tok-t", kind=TokenKind.team, team="payments")
    plan = plan_batch(
        [record(alert("db", team="someone-else"))], {"good": team_token}, RULES, TOPICS
    )
    assert plan.accepted[0].alert.team == "payments"
    assert Alert.model_validate_json(plan.messages[0].value).team == "payments"


def test_an_evaluation_bug_rejects_one_alert_and_keeps_going() -> None:
    class Exploding(ByServiceRuleset):
        def evaluate(self, alert: AlertView, source: AlertSource = UNKNOWN_SOURCE):  # type: ignore[no-untyped-def]
            if alert.service == "boom":
                raise RuntimeError("bug")
            return super().evaluate(alert)

    plan = plan_batch(
        [record(alert("boom")), record(alert("web"), offset=1)],
        {"good": principal()},
        Exploding({"web": ("frontend",)}),
        TOPICS,
    )
    assert [m.topic for m in plan.messages] == ["t.rejected", "t.team.frontend"]
    assert RejectedHeaders.from_kafka(plan.messages[0].headers).reason == "evaluation_error"


def test_routed_headers_match_the_contract() -> None:
    """The plan builds header tuples by hand; they must equal ``RoutedHeaders.to_kafka``."""
    multi = ByServiceRuleset({"db": ("dba", "sre", "dba")}, version=4)
    inbounds = [record(alert("db", id=f"a{n}"), offset=9 + n) for n in range(2)]
    plan = plan_batch(inbounds, {"good": principal("tok")}, multi, TOPICS)
    assert [m.topic for m in plan.messages] == ["t.team.dba", "t.team.sre"] * 2
    for n, message in enumerate(plan.messages):
        contract = RoutedHeaders(
            alert_id=f"a{n // 2}",
            team=("dba", "sre")[n % 2],
            rule_ids=("r-dba", "r-sre", "r-dba"),
            ruleset_version=4,
            token_id="tok",
            source_topic="alerts",
            source_partition=0,
            source_offset=9 + n // 2,
        )
        assert sorted(message.headers) == sorted(contract.to_kafka())
    assert plan.copies_by_team == {"dba": 2, "sre": 2}
    assert plan.unrouted == 0
    assert plan.accepted[1].teams == ("dba", "sre")


def test_unrouted_headers_match_the_contract_and_are_counted() -> None:
    plan = plan_batch([record(alert("nope", id="u1"))], {"good": principal("tok")}, RULES, TOPICS)
    contract = RoutedHeaders(
        alert_id="u1",
        team="",
        rule_ids=(),
        ruleset_version=7,
        token_id="tok",
        source_topic="alerts",
        source_partition=0,
        source_offset=0,
    )
    assert sorted(plan.messages[0].headers) == sorted(contract.to_kafka())
    assert (plan.unrouted, plan.copies_by_team) == (1, {})


def test_each_alert_reaches_the_evaluator_with_its_source() -> None:
    """Tenancy: the authenticated token (and a team token's team) is the alert's source."""
    ruleset = compile_ruleset(
        parse_ruleset(
            {
                "rules": [
                    {
                        "name": "payments-own",
                        "owner_team": "payments",
                        "scope": "team",
                        "destinations": ["payments"],
                    },
                    {
                        "name": "org-fallback",
                        "owner_team": "platform",
                        "destinations": ["platform"],
                        "fallback": True,
                    },
                ],
                "sources": {"tok-bridge": ["payments"]},
            }
        )
    )
    inbounds = [
        record(alert("web", id="from-team"), token="team", offset=0),
        record(alert("web", id="from-global"), token="global", offset=1),
        record(alert("web", id="from-bridge"), token="bridge", offset=2),
        record(alert("web", id="spoofed", team="payments"), token="global", offset=3),
    ]
    auth: dict[str, AuthOutcome] = {
        "team": principal("tok-team", kind=TokenKind.team, team="payments"),
        "global": principal("tok-global"),
        "bridge": principal("tok-bridge"),
    }
    plan = plan_batch(inbounds, auth, ruleset, TOPICS)
    assert {p.alert.id: p.teams for p in plan.accepted} == {
        "from-team": ("payments",),
        "from-global": ("platform",),
        "from-bridge": ("payments",),  # assigned to payments by an admin
        "spoofed": ("platform",),  # the alert's own team field owns nothing
    }


def test_a_batch_plans_as_its_records_would_one_by_one() -> None:
    """Decisions, headers and topics shared across a batch change nothing: the plan of a batch
    (repeated decisions, fan-out, unrouted, two tokens, two partitions) is the concatenation of
    the plans of its records."""
    ruleset = compile_ruleset(
        parse_ruleset(
            {
                "rules": [
                    {
                        "name": "db",
                        "owner_team": "dba",
                        "destinations": ["dba", "sre"],
                        "continue": True,
                        "condition_groups": [
                            {
                                "conditions": [
                                    {"field": "service", "operator": "equals", "values": ["db"]}
                                ]
                            }
                        ],
                    },
                    {
                        "name": "crit",
                        "owner_team": "sre",
                        "destinations": ["sre", "oncall"],
                        "condition_groups": [
                            {
                                "conditions": [
                                    {
                                        "field": "severity",
                                        "operator": "is_one_of",
                                        "values": ["critical"],
                                    }
                                ]
                            }
                        ],
                    },
                ]
            },
            version=4,
        )
    )
    services = ["db", "web", "db", "cache", "web", "db"]
    inbounds = []
    for n in range(24):
        body = json.dumps(
            alert(services[n % 6], id=f"a{n}", severity=("critical", "warning")[n % 4 > 0])
        ).encode()
        token = ("good", "other")[n // 12]
        headers = [("authorization", f"Bearer {token}".encode())]
        inbounds.append(inspect_record("alerts", n // 8, n, b"k", body, headers, 1_700_000_000_000))
    auth: dict[str, AuthOutcome] = {"good": principal("tok-good"), "other": principal("tok-o")}
    batch = plan_batch(inbounds, auth, ruleset, TOPICS)
    singles = [plan_batch([inbound], auth, ruleset, TOPICS) for inbound in inbounds]
    assert batch.messages == [m for single in singles for m in single.messages]
    assert batch.unrouted == sum(s.unrouted for s in singles) > 0
    copies: dict[str, int] = {}
    for single in singles:
        for team, count in single.copies_by_team.items():
            copies[team] = copies.get(team, 0) + count
    assert batch.copies_by_team == copies
    offset = 0
    for planned, single in zip(batch.accepted, singles, strict=True):
        (one,) = single.accepted
        assert planned.message_indexes == [offset + i for i in one.message_indexes]
        offset += len(single.messages)
        assert (planned.teams, planned.rule_ids, planned.ruleset_version, planned.fallback) == (
            one.teams,
            one.rule_ids,
            one.ruleset_version,
            one.fallback,
        )
        assert planned.principal is one.principal
