"""Hostile input never crashes the router's intake: every record becomes an alert or a reason.

Fuzzed bytes, huge and deeply nested documents, wrong types, bad UTF-8 and bad headers are fed to
the same pure function the router runs on every consumed record.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.router import rejects
from services.router.intake import Inbound, inspect_record
from shared.alert import MAX_ALERT_BYTES

TOKEN = "ayg_" + "a" * 52
GOOD_HEADERS = [("authorization", f"Bearer {TOKEN}".encode())]
INTAKE_REASONS = {
    rejects.MISSING_TOKEN,
    rejects.MALFORMED_AUTHORIZATION,
    rejects.INVALID_UTF8,
    rejects.INVALID_JSON,
    rejects.SCHEMA_VIOLATION,
    rejects.OVERSIZED,
    rejects.SEVERITY_UNMAPPED,
}

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
header_lists = st.lists(
    st.tuples(
        st.sampled_from(["authorization", "Authorization", "x-other", ""]) | st.text(max_size=10),
        st.none() | st.binary(max_size=80),
    ),
    max_size=4,
)


def _inspect(value: bytes | None, headers: object) -> Inbound:
    return inspect_record("alerts", 0, 7, None, value, headers, 1_700_000_000_000)


def _settled(inbound: Inbound) -> None:
    """Exactly one outcome, and a rejection carries a known, machine-readable reason."""
    assert (inbound.alert is None) != (inbound.rejection is None)
    if inbound.rejection is not None:
        assert inbound.rejection.reason in INTAKE_REASONS
        assert TOKEN not in inbound.rejection.detail


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.none() | st.binary(max_size=512), headers=header_lists)
def test_fuzzed_bytes_and_headers(
    value: bytes | None, headers: list[tuple[str, bytes | None]]
) -> None:
    _settled(_inspect(value, headers))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(document=json_values)
def test_any_json_document(document: object) -> None:
    inbound = _inspect(json.dumps(document).encode(), GOOD_HEADERS)
    _settled(inbound)
    assert inbound.rejection is not None  # no random document is a valid alert
    assert inbound.rejection.reason in {rejects.SCHEMA_VIOLATION, rejects.INVALID_JSON}


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(
        ["source", "summary", "severity", "status", "labels", "payload", "starts_at", "id"]
    ),
    wrong=json_values,
)
def test_wrong_types_in_known_fields(field: str, wrong: object) -> None:
    alert: dict[str, object] = {"source": "fuzz", "summary": "s", field: wrong}
    _settled(_inspect(json.dumps(alert).encode(), GOOD_HEADERS))


def test_deeply_nested_document_is_rejected_not_crashing() -> None:
    deep = b'{"source":"x","summary":"y","payload":' + b'{"a":' * 5000 + b"1" + b"}" * 5001
    inbound = _inspect(deep, GOOD_HEADERS)
    _settled(inbound)
    assert inbound.rejection is not None


def test_huge_message_is_rejected_before_parsing() -> None:
    inbound = _inspect(b"[" * (MAX_ALERT_BYTES + 1), GOOD_HEADERS)
    assert inbound.rejection is not None
    assert inbound.rejection.reason == rejects.OVERSIZED


def test_bad_utf8_with_valid_token() -> None:
    inbound = _inspect(b'{"source":"\xff\xfe","summary":"y"}', GOOD_HEADERS)
    assert inbound.rejection is not None
    assert inbound.rejection.reason == rejects.INVALID_UTF8


def test_valid_alert_passes() -> None:
    inbound = _inspect(b'{"source":"x","summary":"y","labels":{"env":"prod"}}', GOOD_HEADERS)
    _settled(inbound)
    assert inbound.alert is not None
    assert inbound.token == TOKEN
