"""The record format is frozen: logs written before the batched encoder still verify, reopen and
come out byte for byte the same from the current writer."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit import event_json
from services.audit.event_json import encode_events
from services.audit.log import AuditLog
from services.audit.quarantine import decode_events
from services.audit.records import (
    GENESIS_HASH,
    canonical_json,
    chain_records,
    encode_record,
)
from services.audit.segments import list_segments
from services.audit.signing import PUBLIC_KEY_FILE, load_or_create_signing_key, load_public_key
from services.audit.verify import verify_log
from shared.events import Actor, Event
from tests.unit.audit._helpers import event

V1_LOG = Path(__file__).parent / "data" / "v1-log"
"""Written by the writer of commit c2f82f6 (before batching) from :func:`_v1_events`."""
V1_SEED = "11" * 32
"""The fixture's test-only signing key (hex seed); only its public key is stored with it."""


def _v1_event(n: int, source: str) -> Event:
    data: dict[str, Any] = {
        "name": f"token {n}",
        "note": "héllo ✓",
        "nested": {"b": [1, 2.5, None, True], "a": {"z": "\u00e9", "y": -1}},
        "big": 12345678901234567890,
        "f": 1e16 if n % 2 else 0.1,
        "nan": float("nan") if n == 3 else 0,
    }
    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=n, microseconds=n * 7)
    return Event(
        id=f"v1-{source}-{n}",
        type="token.created",
        source=source,
        sequence=n,
        time=when.astimezone(timezone(timedelta(hours=n % 3))),
        actor=Actor(
            user_id=f"user-{n % 3}" if n % 4 else None,
            token_id=f"tok-{n % 2}",
            kind="user" if n % 4 else "token",
        ),
        subject=f"token/t{n}",
        data=data,
    )


def _v1_batches() -> list[list[Event]]:
    return [
        [
            _v1_event(n, source)
            for n in range(start, min(start + 6, 41))
            for source in ("tokens", "rules")
            if not (source == "rules" and n in (7, 8))  # a gap in "rules"
        ]
        for start in range(1, 41, 6)
    ]


def _segment_bytes(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for _, path in list_segments(directory)}


def test_a_log_written_before_the_change_still_verifies() -> None:
    report = verify_log(V1_LOG, load_public_key(V1_LOG / PUBLIC_KEY_FILE))
    assert report.ok, report.problems
    assert (report.head_seq, report.unsigned_tail, report.segments) == (78, 0, 12)


def test_the_writer_reproduces_the_old_log_byte_for_byte(tmp_path: Path) -> None:
    key = load_or_create_signing_key(tmp_path, V1_SEED)
    audit_log = AuditLog.open(
        tmp_path, signing_key=key, segment_max_bytes=4096, checkpoint_every_records=10
    )
    try:
        for batch in _v1_batches():
            audit_log.append(batch)
    finally:
        audit_log.close()
    assert _segment_bytes(tmp_path) == _segment_bytes(V1_LOG)


def test_an_old_log_reopens_dedupes_and_grows(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    shutil.copytree(V1_LOG, directory)
    key = load_or_create_signing_key(directory, V1_SEED)
    audit_log = AuditLog.open(directory, signing_key=key, segment_max_bytes=4096)
    try:
        assert audit_log.head_seq == 78
        assert [s.missing for s in audit_log.gaps.snapshot()] == [[(7, 8)], []]
        result = audit_log.append([_v1_event(40, "tokens"), _v1_event(41, "tokens")])
        assert (result.appended, result.duplicates, result.first_seq) == (1, 1, 79)
    finally:
        audit_log.close()
    report = verify_log(directory, load_public_key(directory / PUBLIC_KEY_FILE))
    assert report.ok, report.problems
    assert report.head_seq == 79


def _v1_event_document(event: Event) -> dict[str, Any]:
    """The event document as the writer built it before the change (kept as the reference)."""
    actor = event.actor
    doc = {
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "sequence": event.sequence,
        "time": event.time.isoformat().replace("+00:00", "Z"),
        "actor": {"user_id": actor.user_id, "token_id": actor.token_id, "kind": actor.kind},
        "subject": event.subject,
        "data": event.data,
    }
    if not _json_native(event.data):
        return event.model_dump(mode="json")
    return doc


def _json_native(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return value == value and value not in (float("inf"), float("-inf"))
    if kind is dict:
        return all(type(k) is str and _json_native(v) for k, v in value.items())
    if kind is list:
        return all(_json_native(v) for v in value)
    return False


_JSON_DATA = st.dictionaries(
    st.text(max_size=5),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner),
        max_leaves=6,
    ),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    data=st.lists(_JSON_DATA, min_size=1, max_size=4),
    when=st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))])),
)
def test_batched_encoding_equals_the_old_record_by_record_encoding(
    data: list[dict[str, Any]], when: datetime
) -> None:
    events = [event(n, data=d, time=when) for n, d in enumerate(data, start=1)]
    bodies = encode_events(events)
    assert bodies == [canonical_json(e.model_dump(mode="json")) for e in events]
    lines, head = chain_records(7, bodies, GENESIS_HASH)
    prev = GENESIS_HASH
    for seq, (item, line) in enumerate(zip(events, lines, strict=True), start=7):
        expected, prev = encode_record(seq, _v1_event_document(item), prev)
        assert line == expected
    assert head == prev


def test_encoding_python_built_data_normalises_like_pydantic() -> None:
    # Not JSON-native (int keys, a tuple, a datetime): documents are model_dump(mode="json").
    odd = event(1, data={"when": datetime(2026, 1, 1, tzinfo=UTC), "t": (1, 2), "m": {2: "x"}})
    (body,) = encode_events([odd])
    assert body == canonical_json(odd.model_dump(mode="json"))
    assert b'"m":{"2":"x"}' in body
    assert b'"t":[1,2]' in body
    assert encode_events([]) == []


def test_the_direct_writer_knows_the_current_envelope() -> None:
    assert event_json._DIRECT  # otherwise the consumer silently runs the slower general path


def test_an_old_log_is_reproduced_from_kafka_shaped_events(tmp_path: Path) -> None:
    """The consumer's path: JSON bytes -> batched decode -> direct encoding."""
    key = load_or_create_signing_key(tmp_path, V1_SEED)
    audit_log = AuditLog.open(
        tmp_path, signing_key=key, segment_max_bytes=4096, checkpoint_every_records=10
    )
    try:
        for batch in _v1_batches():
            decoded = decode_events([e.to_bytes() for e in batch])
            assert all(isinstance(e, Event) for e in decoded)
            audit_log.append([e for e in decoded if isinstance(e, Event)], from_json=True)
    finally:
        audit_log.close()
    assert _segment_bytes(tmp_path) == _segment_bytes(V1_LOG)


_JSON_LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
_JSON_VALUE = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
_ZONES = st.sampled_from(
    [None, UTC, timezone(timedelta(hours=2)), timezone(-timedelta(hours=9, minutes=30))]
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.dictionaries(st.text(max_size=5), _JSON_VALUE, max_size=4),
    when=st.datetimes(timezones=_ZONES),
    text=st.text(min_size=1, max_size=8),
    user=st.none() | st.text(max_size=5),
    special=st.sampled_from(['"nan":NaN', '"inf":-Infinity', '"esc":"\\u0000\\n\\"\\\\"']),
)
def test_direct_encoding_of_json_events_equals_pydantic_dump(
    data: dict[str, Any], when: datetime, text: str, user: str | None, special: str
) -> None:
    document = {
        "id": f"id-{text}",
        "type": "token.created",
        "source": text,
        "sequence": 5,
        "time": when.isoformat(),
        "actor": {"user_id": user, "token_id": text, "kind": text},
        "subject": text,
        "data": {**data, "\x00special": 0},
    }
    raw = json.dumps(document, ensure_ascii=bool(len(text) % 2)).encode()
    # A member json.dumps would never write: NaN, infinity, escapes it would spell otherwise.
    raw = raw.replace(b'"\\u0000special": 0', special.encode())
    (decoded,) = decode_events([raw])
    assert isinstance(decoded, Event), decoded
    assert special.split('"')[1] in decoded.data
    (direct,) = encode_events([decoded], from_json=True)
    assert direct == canonical_json(decoded.model_dump(mode="json"))
    assert direct == encode_events([decoded])[0]
    assert direct == canonical_json(_v1_event_document(decoded))


def _stdlib_canonical(value: Any) -> bytes:
    """How the first logs were written: Python's json, sorted, compact, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def test_canonical_json_spells_documents_as_the_first_writer_did() -> None:
    documents: list[Any] = [
        {"b": [1, 2.5, None, True, {"z": "é\n", "a": -(2**70)}], "a": '\u2028"\\'},
        {},
        {"x": 1e16, "y": 0.1, "z": 1e-7, "w": -2.5e-5, "v": 1.5e-10, "s": "1e-5"},
        {"\x00": "\x1f\x7f", "é": 2**64 - 1, "e": -(2**63)},
    ]
    assert [canonical_json(d) for d in documents] == [_stdlib_canonical(d) for d in documents]
    assert canonical_json({"nan": float("nan"), "big": 2**70}) == b'{"big":%d,"nan":null}' % 2**70


@settings(max_examples=300, deadline=None)
@given(value=st.dictionaries(st.text(max_size=5), _JSON_VALUE, max_size=5))
def test_canonical_json_equals_the_standard_library(value: dict[str, Any]) -> None:
    assert canonical_json(value) == _stdlib_canonical(value)
