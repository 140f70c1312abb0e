from __future__ import annotations

import json

import pytest

from services.router.intake import Inbound, IntakeOptions, inspect_record, inspect_record_all
from shared.alert import MAX_ALERT_BYTES
from shared.severity import SeverityTable

TOKEN = "ayg_" + "A" * 44
AUTH = [("authorization", f"Bearer {TOKEN}".encode())]
GOOD = json.dumps({"source": "prom", "summary": "disk full", "service": "db"}).encode()


def inspect(
    value: bytes | None, headers: list[tuple[str, bytes]] | None = None, offset: int = 3
) -> Inbound:
    return inspect_record("alerts", 1, offset, b"k", value, AUTH if headers is None else headers, 1)


def test_good_record_parses_and_keeps_token() -> None:
    inbound = inspect(GOOD)
    assert inbound.rejection is None
    assert inbound.token == TOKEN
    assert inbound.alert is not None
    assert inbound.alert.summary == "disk full"


def test_missing_id_is_derived_from_the_record_so_redelivery_keeps_it() -> None:
    first, again, other = inspect(GOOD), inspect(GOOD), inspect(GOOD, offset=4)
    assert first.alert is not None
    assert again.alert is not None
    assert other.alert is not None
    assert first.alert.id == again.alert.id != other.alert.id
    assert first.alert.dedup_key == first.alert.id
    assert first.alert.starts_at == again.alert.starts_at


def test_given_id_and_dedup_key_are_kept() -> None:
    value = json.dumps({"id": "a-1", "dedup_key": "d", "source": "s", "summary": "x"}).encode()
    alert = inspect(value).alert
    assert alert is not None
    assert (alert.id, alert.dedup_key) == ("a-1", "d")


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (GOOD, [], "missing_token"),
        (GOOD, [("authorization", b"Basic abc")], "malformed_authorization"),
        (GOOD, [("authorization", b"Bearer \xff")], "malformed_authorization"),
        (b"\xff\xfe{}", None, "invalid_utf8"),
        (b"{not json", None, "invalid_json"),
        (b"[" * 20000 + b"]" * 20000, None, "invalid_json"),
        (None, None, "invalid_json"),
        (b'{"summary": "no source"}', None, "schema_violation"),
        (b'["a list"]', None, "schema_violation"),
        (b'{"source": "s", "summary": "x", "extra": 1}', None, "schema_violation"),
        # Not JSON numbers: forwarded untouched they would break a strict team consumer.
        (b'{"source": "s", "summary": "x", "payload": {"v": NaN}}', None, "invalid_json"),
        (
            b'{"source": "s", "summary": "x", "annotations": {"a": [1, -Infinity]}}',
            None,
            "invalid_json",
        ),
        (b"x" * (MAX_ALERT_BYTES + 1), None, "oversized"),
    ],
)
def test_bad_records_become_rejections(
    value: bytes | None, headers: list[tuple[str, bytes]] | None, reason: str
) -> None:
    inbound = inspect(value, headers)
    assert inbound.rejection is not None
    assert inbound.rejection.reason == reason
    assert inbound.alert is None


def test_rejection_detail_never_echoes_a_token() -> None:
    value = json.dumps({"source": "s", "summary": "x", "oops": TOKEN}).encode()
    inbound = inspect(value)
    assert inbound.rejection is not None
    assert TOKEN not in inbound.rejection.detail
    bad_header = inspect(GOOD, [("authorization", f"Token {TOKEN}".encode())])
    assert bad_header.rejection is not None
    assert TOKEN not in bad_header.rejection.detail


# Severity normalisation and other formats on the topic (#10)


def test_alias_severity_is_normalised_not_rejected() -> None:
    value = json.dumps({"source": "prom", "summary": "x", "severity": "high"}).encode()
    inbound = inspect(value)
    assert inbound.rejection is None
    assert inbound.alert is not None
    assert inbound.alert.severity.value == "error"
    assert inbound.alert.labels["severity_original"] == "high"
    assert inbound.rewritten  # published re-serialised, with the canonical value


def test_canonical_severity_keeps_the_producers_bytes() -> None:
    inbound = inspect(GOOD)
    assert not inbound.rewritten


def test_unknown_severity_is_rejected_with_its_own_reason() -> None:
    value = json.dumps({"source": "prom", "summary": "x", "severity": "sev-xyz"}).encode()
    inbound = inspect(value)
    assert inbound.rejection is not None
    assert inbound.rejection.reason == "severity_unmapped"
    options = IntakeOptions(severities=SeverityTable(unmapped=None, aliases={"sev-xyz": "info"}))
    mapped = inspect_record_all("alerts", 0, 1, None, value, AUTH, 1, options)[0]
    assert mapped.alert is not None
    assert mapped.alert.severity.value == "info"


WEBHOOK = {
    "version": "4",
    "receiver": "r",
    "alerts": [
        {"status": "firing", "labels": {"alertname": "A", "severity": "page"}, "fingerprint": "f1"},
        {"status": "resolved", "labels": {"alertname": "B"}, "fingerprint": "f2"},
    ],
}


@pytest.mark.parametrize("declared", [True, False], ids=["header", "detected"])
def test_alertmanager_webhook_record_becomes_one_inbound_per_alert(declared: bool) -> None:
    headers = [*AUTH, ("alertyard-format", b"alertmanager")] if declared else AUTH
    value = json.dumps(WEBHOOK).encode()
    first, second = inspect_record_all("alerts", 0, 9, None, value, headers, 1)
    assert first.alert is not None
    assert second.alert is not None
    assert (first.alert.dedup_key, first.alert.severity.value) == ("f1", "critical")
    assert (second.alert.dedup_key, second.alert.status.value) == ("f2", "resolved")
    assert first.offset == second.offset == 9
    assert first.rewritten


def test_pagerduty_event_record_is_detected() -> None:
    event = {
        "routing_key": "ignored-on-the-topic",
        "event_action": "trigger",
        "payload": {"summary": "s", "source": "h", "severity": "warning"},
    }
    (inbound,) = inspect_record_all("alerts", 0, 5, None, json.dumps(event).encode(), AUTH, 1)
    assert inbound.alert is not None
    again = inspect_record_all("alerts", 0, 5, None, json.dumps(event).encode(), AUTH, 1)[0]
    assert again.alert is not None
    assert inbound.alert.dedup_key == again.alert.dedup_key  # derived from the record


def test_unknown_format_header_is_rejected() -> None:
    inbound = inspect(GOOD, headers=[*AUTH, ("alertyard-format", b"nagios")])
    assert inbound.rejection is not None
    assert inbound.rejection.reason == "schema_violation"


def test_topic_bound_to_a_token_needs_no_header() -> None:
    options = IntakeOptions(topic_tokens={"am-kafka": TOKEN})
    value = json.dumps(WEBHOOK).encode()
    inbounds = inspect_record_all("am-kafka", 0, 1, None, value, [], 1, options)
    assert [i.token for i in inbounds] == [TOKEN, TOKEN]
    unbound = inspect_record_all("alerts", 0, 1, None, value, [], 1, options)
    assert unbound[0].rejection is not None
    assert unbound[0].rejection.reason == "missing_token"
