"""The msgspec fast path decodes exactly what ``Alert.model_validate_json`` accepts, into the
same ``Alert``; whatever it declines goes to pydantic, so intake's verdicts do not change.

Generated documents mix valid and invalid fields (wrong types, missing and extra keys, strings
at and past their limits in code points, nested payloads, odd times, unicode, raw JSON corners).
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.router import intake
from services.router.rejects import Rejection
from shared.alert import MAX_LABELS, MAX_NESTING_DEPTH, Alert, AlertView
from shared.alert_decode import as_model, decode_alert
from shared.severity import DEFAULT_TABLE

_WIDE = ("x", "é", "\u20ac", "\U0001f600", "\x00")  # 1-, 2-, 3-, 4-byte UTF-8, NUL: 1 code point


def _sized(limit: int) -> st.SearchStrategy[str]:
    """Strings at, below and past ``limit`` code points, in characters of every UTF-8 width."""
    return st.builds(
        lambda ch, n: ch * n,
        st.sampled_from(_WIDE),
        st.sampled_from([0, 1, limit - 1, limit, limit + 1]),
    )


_text = st.text(max_size=12) | _sized(128) | _sized(256) | _sized(1024) | _sized(4096)
_scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
_wrong = st.integers() | st.floats() | st.booleans() | st.none() | st.lists(_scalar, max_size=2)


def _nested(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


_json = st.recursive(
    _scalar | st.integers(min_value=2**63 - 2, max_value=2**70),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_free = st.dictionaries(st.text(max_size=6) | _sized(4096), _json, max_size=4) | st.builds(
    lambda d: {"deep": _nested(d)},
    st.integers(min_value=MAX_NESTING_DEPTH - 2, max_value=MAX_NESTING_DEPTH + 2),
)
_labels = st.dictionaries(
    st.text(max_size=6) | _sized(128), st.text(max_size=6) | _sized(1024) | _wrong, max_size=4
) | st.builds(
    lambda n: {f"k{i}": "v" for i in range(n)}, st.sampled_from([MAX_LABELS, MAX_LABELS + 1])
)
_times = (
    st.sampled_from(
        [
            "2024-05-01T10:00:00Z",
            "2024-05-01T10:00:00+02:00",
            "2024-05-01T10:00:00-00:00",
            "2024-05-01T10:00:00.123Z",
            "2024-05-01T10:00:00.1234567Z",
            "2024-05-01T10:00:00",
            "2024-05-01 10:00:00Z",
            "2024-05-01t10:00:00z",
            "2024-05-01",
            "2024-13-01T10:00:00Z",
            "yesterday",
            "",
            "1714557600",
        ]
    )
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats()
    | st.datetimes().map(lambda d: d.isoformat())
)
_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "id": _text | _wrong,
    "dedup_key": _text | _wrong,
    "source": _text | _wrong,
    "summary": _text | _wrong,
    "severity": st.sampled_from(["critical", "error", "warning", "info", "high", "Critical", ""])
    | _wrong,
    "status": st.sampled_from(["firing", "resolved", "Firing"]) | _wrong,
    "service": _text | _wrong,
    "environment": _text | _wrong,
    "team": _text | _wrong,
    "labels": _labels | _wrong,
    "annotations": _free | _wrong,
    "payload": _free | _wrong,
    "starts_at": _times | st.none() | _wrong,
    "ends_at": _times | st.none() | _wrong,
}


_short = st.text(max_size=12)
_named = st.text(min_size=1, max_size=12)
_VALID: dict[str, st.SearchStrategy[Any]] = {
    "id": _named,
    "dedup_key": _short,
    "source": _named,
    "summary": _named,
    "severity": st.sampled_from(["critical", "error", "warning", "info"]),
    "status": st.sampled_from(["firing", "resolved"]),
    "service": _short,
    "environment": _short,
    "team": st.none() | _short,
    "labels": st.dictionaries(st.text(min_size=1, max_size=6), st.text(max_size=6), max_size=4),
    "annotations": st.dictionaries(st.text(max_size=6), _json, max_size=4),
    "payload": st.dictionaries(st.text(max_size=6), _json, max_size=4),
    "starts_at": st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    "ends_at": st.none() | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
}
"""Values pydantic accepts; documents are mostly these, with a few fields from ``_FIELDS``
(valid or not), so that many documents are valid but for one field."""


@st.composite
def _documents(draw: st.DrawFn) -> bytes:
    doc: dict[str, Any] = {}
    for name, anything in _FIELDS.items():
        required = name in ("source", "summary")
        pick = draw(st.integers(0, 11))
        if pick < 4 and not (required and pick > 0):
            continue  # left out (a required field only now and then)
        doc[name] = draw(anything if pick == 11 else _VALID[name])
    if draw(st.integers(0, 9)) == 0:
        doc[draw(st.sampled_from(["extra", "Source", "labels "]))] = draw(_scalar)
    root: Any = doc if draw(st.integers(0, 19)) > 0 else draw(st.sampled_from([[doc], "x", 1]))
    return json.dumps(root, ensure_ascii=draw(st.booleans())).encode()


_RAW = [
    b'{"source":"a","source":"b","summary":"x"}',
    b'{"source":"s","summary":"x","labels":{"a":"1","a":"2"}}',
    b'{"source":"s","summary":"x","labels":{'
    + b",".join(b'"k%d":"v"' % i for i in range(MAX_LABELS))
    + b',"k0":"w"}}',
    b'{"source":"s","summary":"x","payload":{"a":NaN,"b":Infinity}}',
    b'{"source":"s","summary":"x","payload":{"a":1e400,"b":-0,"c":1E2,"d":0.1e-400}}',
    b'{"source":"s","summary":"x","payload":{"a":123456789012345678901234567890}}',
    b'{"source":"s","summary":"\\ud800"}',
    b'{"source":"s","summary":"\\ud83d\\ude00"}',
    b'{"source":"s","summary":"\xff"}',
    b'{"source":"s","summary":"\xed\xa0\x80"}',
    b'{"source":"s","summary":"\xc0\xaf"}',
    b'\xef\xbb\xbf{"source":"s","summary":"x"}',
    b' \n{"source":"s","summary":"x"}\t ',
    b'{"source":"s","summary":"x"} x',
    b'{"source":"s","summary":"x",}',
    b'{"source":"s","summary":"x","dedup_key":""}',
    b'{"source":"s","summary":"x","id":"i","dedup_key":""}',
    b'{"source":"s","summary":"x","team":null,"ends_at":null}',
    b'{"source":"s","summary":"x","payload":' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
    b"",
    b"null",
    *(
        json.dumps({"source": "s", "summary": "x", field: {ch * n: 1}}).encode()
        for field in ("annotations", "payload")
        for ch in ("k", "\U0001f600")
        for n in (4096, 4097)  # the config-wide string limit also holds for keys
    ),
]


_RAW += [body.replace(b'{"source":', b'{"id":"i","source":', 1) for body in _RAW]
"""Each corner with an ``id`` too: without one the fast path always declines (intake derives
it from the record on pydantic's path)."""


def _values(alert: AlertView, *, clock_default: bool) -> str:
    """Every field's value, attribute by attribute; ``repr`` so 1 and 1.0, a str and a StrEnum,
    or two tzinfo types do not compare equal. A ``starts_at`` from the clock is left out."""
    return repr(
        [
            (name, type(value), value)
            for name in Alert.model_fields
            if not (clock_default and name == "starts_at")
            for value in [getattr(alert, name)]
        ]
    )


def _check(body: bytes) -> None:
    fast = decode_alert(body)
    if fast is None:
        return  # pydantic's path, unchanged
    reference = Alert.model_validate_json(body)  # raises if the fast path accepted too much
    assert body.decode("utf-8")
    assert not isinstance(fast, Alert)
    assert "id" in reference.model_fields_set  # intake derives a missing one: never fast
    clock = "starts_at" not in reference.model_fields_set
    assert _values(fast, clock_default=clock) == _values(reference, clock_default=clock)
    assert fast.kafka_key() == reference.kafka_key()
    model = as_model(fast)  # what plan re-serialises when it stamps a team
    assert _values(model, clock_default=False) == _values(fast, clock_default=False)
    if not clock:
        assert model == reference
        assert model.to_bytes() == reference.to_bytes()


def _old_parse(body: bytes) -> tuple[Any, bool]:
    """Intake's verdict with the fast path switched off: what it was before."""
    with mock.patch.object(intake, "decode_alert", return_value=None):
        return intake._parse(body, DEFAULT_TABLE)


def _verdict(parsed: tuple[Any, bool]) -> Any:
    result, rewritten = parsed
    if isinstance(result, Rejection):
        return ("rejected", result.reason, result.detail)
    if isinstance(result, Alert) and "id" not in result.model_fields_set:
        # a uuid4 of pydantic's, which intake then replaces by one derived from the record
        update = {"id": "-"} | ({"dedup_key": "-"} if result.dedup_key == result.id else {})
        result = result.model_copy(update=update)
    return ("alert", _values(result, clock_default=True), rewritten)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_fast_path_accepts_only_what_pydantic_accepts_and_yields_the_same_alert(
    body: bytes,
) -> None:
    _check(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_documents())
def test_intake_verdicts_are_unchanged(body: bytes) -> None:
    assert _verdict(intake._parse(body, DEFAULT_TABLE)) == _verdict(_old_parse(body))


@settings(max_examples=300, deadline=None)
@given(_documents(), st.integers(min_value=0), st.binary(min_size=1, max_size=3))
def test_bytes_spliced_into_a_document(body: bytes, at: int, junk: bytes) -> None:
    at %= len(body) + 1
    _check(body[:at] + junk + body[at:])


def test_raw_json_corners() -> None:
    for body in _RAW:
        _check(body)
        assert _verdict(intake._parse(body, DEFAULT_TABLE)) == _verdict(_old_parse(body))


def _finite(value: Any) -> bool:
    return not isinstance(value, float) or value - value == 0


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "id": st.text(min_size=1, max_size=20),
            "source": st.text(min_size=1, max_size=20),
            "summary": st.text(min_size=1, max_size=20),
        },
        optional={
            "dedup_key": st.text(max_size=20),
            "severity": st.sampled_from(["critical", "error", "warning", "info"]),
            "status": st.sampled_from(["firing", "resolved"]),
            "service": st.text(max_size=20),
            "team": st.none() | st.text(max_size=20),
            "labels": st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8)),
            "payload": st.dictionaries(st.text(max_size=8), _scalar.filter(_finite)),
            "starts_at": st.datetimes().map(lambda d: d.isoformat() + "Z"),
        },
    )
)
def test_ordinary_alerts_take_the_fast_path(doc: dict[str, Any]) -> None:
    """The fast path is not a no-op: valid, ordinary alerts never fall back to pydantic."""
    body = json.dumps(doc).encode()
    assert decode_alert(body) is not None
    _check(body)


def test_a_refused_alert_is_refused_by_pydantic_too() -> None:
    body = b'{"source":"","summary":"x"}'
    assert decode_alert(body) is None
    with pytest.raises(ValidationError):
        Alert.model_validate_json(body)


def test_without_an_id_intake_takes_pydantics_path() -> None:
    """Intake derives a missing id from the record; only pydantic's path does that."""
    body = b'{"source":"s","summary":"x"}'
    assert decode_alert(body) is None
    parsed, _ = intake._parse(body, DEFAULT_TABLE)
    assert isinstance(parsed, Alert)


def test_a_nested_payload_takes_pydantics_path() -> None:
    body = b'{"id":"i","source":"s","summary":"x","payload":{"a":{"b":1}}}'
    assert decode_alert(body) is None
    assert Alert.model_validate_json(body).payload == {"a": {"b": 1}}
