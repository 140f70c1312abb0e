from __future__ import annotations

import json

import pytest

from services.router.intake import Inbound, inspect_record
from shared.alert import MAX_ALERT_BYTES

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
