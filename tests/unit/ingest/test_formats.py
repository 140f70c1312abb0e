"""The pure format conversions, property-tested: arbitrary JSON never raises, well-formed
input maps field by field as docs/ingest.md says."""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.alert import Alert
from shared.formats import Format, Problem, alertmanager, detect, native, pagerduty
from shared.severity import DEFAULT_ALIASES, SeverityTable

TABLE = SeverityTable()
MAPPING = alertmanager.AlertmanagerMapping()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
names = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=12)
label_sets = st.dictionaries(names, st.text(max_size=30), max_size=8)


@given(json_values)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_json_never_raises(doc: Any) -> None:
    results = alertmanager.convert(doc, mapping=MAPPING, severities=TABLE)
    assert all(isinstance(r, Alert | Problem) for r in results)
    wrapped = alertmanager.convert({"alerts": [doc]}, mapping=MAPPING, severities=TABLE)
    assert len(wrapped) == 1
    event = pagerduty.convert(doc, severities=TABLE, new_dedup_key=lambda: "k")
    assert (event.alert is None) == bool(event.errors)
    assert all(isinstance(r, Alert | Problem) for r in native.convert([doc], severities=TABLE))
    assert isinstance(detect(doc), Format)


@given(
    labels=label_sets,
    severity=st.sampled_from(sorted(DEFAULT_ALIASES)),
    status=st.sampled_from(["firing", "resolved"]),
    fingerprint=st.text(
        st.characters(min_codepoint=48, max_codepoint=102), min_size=1, max_size=16
    ),
    nanos=st.integers(0, 999_999_999),
)
def test_alertmanager_alert_maps_field_by_field(
    labels: dict[str, str], severity: str, status: str, fingerprint: str, nanos: int
) -> None:
    labels = {**labels, "severity": severity.upper(), "alertname": "A"}
    entry = {
        "status": status,
        "labels": labels,
        "annotations": {},
        "startsAt": f"2026-12-01T09:00:00.{nanos:09d}Z",
        "endsAt": "2026-12-01T10:00:00Z" if status == "resolved" else alertmanager.ZERO_TIME,
        "fingerprint": fingerprint,
        "someFutureField": {"x": 1},
    }
    (alert,) = alertmanager.convert(
        {"version": "4", "alerts": [entry], "notification_reason": "x"},
        mapping=MAPPING,
        severities=TABLE,
    )
    assert isinstance(alert, Alert)
    assert alert.dedup_key == fingerprint
    assert alert.status.value == status
    assert alert.severity is DEFAULT_ALIASES[severity]
    assert alert.starts_at.microsecond == nanos // 1000
    assert (alert.ends_at is None) == (status == "firing")
    kept = {k: v for k, v in alert.labels.items() if k != "severity_original"}
    assert kept == labels
    assert alert.summary == "A"
    service = labels.get("service", "").strip() and labels["service"]
    assert alert.service == (service or (labels.get("job", "").strip() and labels["job"]))


def test_alertmanager_ids_are_stable_across_retries() -> None:
    doc = {"version": "4", "alerts": [{"labels": {"alertname": "A"}, "fingerprint": "f1"}]}
    first = alertmanager.convert(doc, mapping=MAPPING, severities=TABLE)
    again = alertmanager.convert(doc, mapping=MAPPING, severities=TABLE)
    assert isinstance(first[0], Alert)
    assert isinstance(again[0], Alert)
    assert first[0].id == again[0].id


def test_configurable_mapping() -> None:
    mapping = alertmanager.AlertmanagerMapping(
        service_from=["labels.app"], summary_from=["annotations.title"], source="prom-eu"
    )
    doc = {
        "receiver": "r",
        "alerts": [{"labels": {"app": "web", "job": "j"}, "annotations": {"title": "T"}}],
    }
    (alert,) = alertmanager.convert(doc, mapping=mapping, severities=TABLE)
    assert isinstance(alert, Alert)
    assert (alert.service, alert.summary, alert.source) == ("web", "T", "prom-eu")


@given(
    summary=st.text(min_size=1, max_size=1024).filter(str.strip),
    action=st.sampled_from(["trigger", "acknowledge", "resolve"]),
    severity=st.sampled_from(["critical", "error", "warning", "info"]),
)
def test_pagerduty_event_maps_field_by_field(summary: str, action: str, severity: str) -> None:
    doc = {
        "routing_key": "ayg_x",
        "event_action": action,
        "dedup_key": "dk",
        "payload": {"summary": summary, "source": "host", "severity": severity, "component": "c"},
    }
    event = pagerduty.convert(doc, severities=TABLE, new_dedup_key=lambda: uuid.uuid4().hex)
    assert event.alert is not None, event.errors
    assert event.alert.summary == summary
    assert event.alert.status.value == ("resolved" if action == "resolve" else "firing")
    assert event.alert.labels["event_action"] == action
    assert event.alert.service == "c"


def test_pagerduty_limits_and_generated_dedup_key() -> None:
    base = {"routing_key": "k", "event_action": "trigger"}
    payload = {"summary": "s", "source": "h", "severity": "info"}
    event = pagerduty.convert(
        {**base, "payload": payload}, severities=TABLE, new_dedup_key=lambda: "generated"
    )
    assert event.dedup_key == "generated"
    too_long = pagerduty.convert(
        {**base, "payload": {**payload, "summary": "x" * 1025}, "dedup_key": "d" * 256},
        severities=TABLE,
        new_dedup_key=lambda: "g",
    )
    assert len(too_long.errors) == 2
    resolve = pagerduty.convert(
        {**base, "event_action": "resolve"}, severities=TABLE, new_dedup_key=lambda: "g"
    )
    assert resolve.errors == ["'dedup_key' is required to resolve"]


def test_native_documents_object_array_ndjson() -> None:
    assert native.split_documents(b'{"a": 1}') == [{"a": 1}]
    assert native.split_documents(b"[1, 2]") == [1, 2]
    assert native.split_documents(b'{"a": 1}\n\n{"b": 2}\n') == [{"a": 1}, {"b": 2}]
    broken = native.split_documents(b'{"a": 1}\n{"b": ')
    assert isinstance(broken, Problem)
    assert broken.reason == "invalid_json"


def test_pagerduty_ids_are_stable_across_retries_and_never_hash_the_routing_key() -> None:
    payload = {"summary": "s", "source": "h", "severity": "info"}
    doc = {"routing_key": "k1", "event_action": "trigger", "dedup_key": "d", "payload": payload}

    def alert_id(event: dict[str, Any]) -> str:
        converted = pagerduty.convert(event, severities=TABLE, new_dedup_key=lambda: "g")
        assert converted.alert is not None
        return converted.alert.id

    assert alert_id(doc) == alert_id({**doc, "routing_key": "another-token"})
    assert alert_id(doc) != alert_id({**doc, "event_action": "resolve"})


@given(
    field=st.sampled_from(["status", "startsAt", "endsAt", "generatorURL", "fingerprint"]),
    value=st.integers() | st.booleans() | st.lists(st.text(max_size=3), max_size=2) | st.just({}),
)
def test_alertmanager_fields_of_the_wrong_type_are_refused_not_dropped(
    field: str, value: Any
) -> None:
    # Found by schemathesis: a firing alert's endsAt as an array was accepted (202), although the
    # webhook schema documents text or null.
    entry = {"status": "firing", "labels": {"alertname": "A"}, field: value}
    [result] = alertmanager.convert(
        {"version": "4", "alerts": [entry]}, mapping=MAPPING, severities=TABLE
    )
    assert isinstance(result, Problem)
    assert field in result.detail


def test_alertmanager_envelope_and_label_values_must_be_text() -> None:
    alert = {"labels": {"alertname": "A"}}
    [envelope] = alertmanager.convert(
        {"version": 4, "alerts": [alert]}, mapping=MAPPING, severities=TABLE
    )
    assert isinstance(envelope, Problem)
    assert envelope.index is None
    [labels] = alertmanager.convert(
        {"version": "4", "alerts": [{"labels": {"alertname": 5}}]},
        mapping=MAPPING,
        severities=TABLE,
    )
    assert isinstance(labels, Problem)
    assert labels.index == 0
