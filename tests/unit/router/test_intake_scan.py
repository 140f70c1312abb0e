"""Intake's one-pass header scan and its UTF-8 check after pydantic give the verdicts the
separate scans and the up-front check gave."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.router import rejects
from services.router.intake import _read_headers, parse_value
from shared.alert import Alert
from shared.formats.detect import FORMAT_HEADER
from shared.headers import AUTHORIZATION, header_value

_names = st.sampled_from(
    [AUTHORIZATION, "Authorization", "AUTHORIZATION", FORMAT_HEADER, "Alertyard-Format", "x-o"]
)
_values = st.sampled_from([None, b"", b"Bearer t", b"Bearer u", b"native", b"alertmanager"])


def _first_authorization(headers: list[tuple[str, bytes | None]]) -> bytes | None:
    """The scan intake ran before: the first authorization header counts, even if empty."""
    for name, value in headers:
        if name.lower() == AUTHORIZATION:
            return value
    return None


@given(st.lists(st.tuples(_names, _values), max_size=6))
def test_one_pass_reads_what_the_two_scans_read(headers: list[tuple[str, bytes | None]]) -> None:
    assert _read_headers(headers) == (
        _first_authorization(headers),
        header_value(headers, FORMAT_HEADER),
    )


def test_no_headers() -> None:
    assert _read_headers(None) == (None, None)
    assert _read_headers([]) == (None, None)


_documents = st.fixed_dictionaries(
    {"source": st.text(min_size=1, max_size=8), "summary": st.text(min_size=1, max_size=8)},
    optional={
        "labels": st.dictionaries(st.text(min_size=1, max_size=4), st.text(max_size=4)),
        "payload": st.dictionaries(st.text(max_size=4), st.text(max_size=4) | st.integers()),
        "annotations": st.dictionaries(st.text(max_size=4), st.lists(st.text(max_size=3))),
    },
).map(lambda d: json.dumps(d, ensure_ascii=False).encode())
_bad_utf8 = st.sampled_from(
    [b"\xff", b"\xfe", b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]
) | st.binary(min_size=1, max_size=3)


@settings(max_examples=500)
@given(_documents, st.integers(min_value=0), _bad_utf8)
def test_pydantic_refuses_bad_utf8_anywhere_and_intake_says_so(
    body: bytes, at: int, junk: bytes
) -> None:
    """Bytes spliced anywhere into a valid alert (strings, keys, between tokens): when the
    result is not UTF-8, pydantic refuses it, and intake's reason is ``invalid_utf8`` with the
    offset of the first bad byte, as when it checked before parsing."""
    at %= len(body) + 1
    spliced = body[:at] + junk + body[at:]
    try:
        spliced.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
    else:
        return  # still UTF-8: not this test's subject
    refused: Any = None
    try:
        Alert.model_validate_json(spliced)
    except ValidationError as exc:
        refused = exc
    assert refused is not None
    verdict = parse_value(spliced)
    assert not isinstance(verdict, Alert)
    assert (verdict.reason, verdict.detail) == (
        rejects.INVALID_UTF8,
        f"value is not UTF-8 (byte {start})",
    )
