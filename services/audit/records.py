"""The on-disk record, declared once: its byte layout, its canonical JSON and its chain.

A record line is the canonical JSON (keys sorted, no spaces, UTF-8) of
``{"event": ..., "prev_hash": ..., "seq": ...}`` with ``"hash"`` appended as the last member::

    {"event":{...},"prev_hash":"<64 hex>","seq":42,"hash":"<64 hex>"}\\n

``hash`` is SHA-256 over the line without the ``,"hash":"..."`` member, i.e. over the bytes
``line[:-HASH_SUFFIX_LEN] + b"}"``. Because the hashed bytes sit verbatim in the file, a
verifier hashes them as they are (no re-serialisation), which is both exact and fast. The
writer (:mod:`services.audit.log`), the verifier, the query and the checkpoints all read the
layout from the names below.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "GENESIS_HASH",
    "HASH_KEY",
    "HASH_SUFFIX_LEN",
    "PREV_KEY",
    "SEQ_KEY",
    "ParsedLine",
    "canonical_json",
    "chain_records",
    "encode_record",
    "hashed_bytes",
    "parse_line",
    "record_tail",
    "stored_hash",
]

GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of the first record (seq 1)."""

HASH_KEY: Final = b',"hash":"'
PREV_KEY: Final = b',"prev_hash":"'
SEQ_KEY: Final = b'","seq":'
HASH_SUFFIX_LEN: Final = len(HASH_KEY) + 64 + len(b'"}')
"""``,"hash":"<64 hex>"}``: what a line (without its newline) ends with."""
_HASH_START: Final = -HASH_SUFFIX_LEN + len(HASH_KEY)  # the 64 hex digits: line[-66:-2]

_SORT_KEYS: Final = orjson.OPT_SORT_KEYS
_FLOAT_ORJSON_MAY_SPELL_OTHERWISE: Final = re.compile(rb"[:,\[]-?(?:\d+(?:\.\d+)?e|0\.0000)")
"""A number with an exponent, or below 1e-4: where orjson and Python's ``json`` (the writer of
the first logs) may spell a float differently (``1e-7`` / ``1e-07``, ``0.00006103515625`` /
``6.103515625e-05``). Every difference over millions of random floats matched this; the
Hypothesis test keeps holding the two to each other."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: the bytes that get hashed and signed.

    orjson does the work; its output equals Python's ``json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` (how the first logs were written) except for
    two cases it cannot or does not spell alike, which take the standard library instead:
    integers beyond 64 bits, and floats written with an exponent or below 1e-4 (the regex may
    also hit a string that looks like one, which only costs the slower path). NaN and infinity are
    written as ``null``, as pydantic's JSON dump of an event writes them.
    """
    try:
        out = orjson.dumps(value, option=_SORT_KEYS)
    except orjson.JSONEncodeError:
        return _stdlib_json(value)
    if _FLOAT_ORJSON_MAY_SPELL_OTHERWISE.search(out):
        return _stdlib_json(value)
    return out


def _stdlib_json(value: Any) -> bytes:
    return json.dumps(
        _finite(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode()


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None, as orjson (and pydantic) write them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def stored_hash(line: bytes) -> bytes:
    """The ``hash`` member's 64 hex digits of a record line (without its newline)."""
    return line[_HASH_START:-2]


def hashed_bytes(line: bytes) -> bytes:
    """The bytes a record's hash covers: the line without its ``hash`` member."""
    return line[:-HASH_SUFFIX_LEN] + b"}"


def record_tail(prev_hash: bytes, seq: int, digest: bytes) -> bytes:
    """What record ``seq`` chained on ``prev_hash`` with hash ``digest`` must end with."""
    return b'%s%s%s%d%s%s"}' % (PREV_KEY, prev_hash, SEQ_KEY, seq, HASH_KEY, digest)


def chain_records(
    first_seq: int, events: Sequence[bytes], prev_hash: str
) -> tuple[list[bytes], str]:
    """Record lines (with newlines) for canonical event documents numbered from ``first_seq``,
    chained on ``prev_hash``; returns them and the new head hash.

    ``events`` come from :func:`services.audit.event_json.encode_events`. The body is assembled
    rather than re-serialised: the sorted members of a record are
    ``event``, ``prev_hash``, ``seq``, so ``{"event":<event>,"prev_hash":"<hex>","seq":<n>}`` is
    exactly ``canonical_json`` of the record (a unit test holds this to :func:`encode_record`).
    """
    sha256 = hashlib.sha256
    lines = []
    prev = prev_hash.encode()
    for seq, event in enumerate(events, start=first_seq):
        head = b'{"event":%b,"prev_hash":"%b","seq":%d' % (event, prev, seq)
        prev = sha256(head + b"}").hexdigest().encode()
        lines.append(b'%b,"hash":"%b"}\n' % (head, prev))
    return lines, prev.decode()


def encode_record(seq: int, event: dict[str, Any], prev_hash: str) -> tuple[bytes, str]:
    """The record line (with its trailing newline) and its hash, from the event document.

    The reference form of the record (serialise the whole record canonically); the writer uses
    :func:`chain_records`, which yields the same bytes.
    """
    body = canonical_json({"event": event, "prev_hash": prev_hash, "seq": seq})
    digest = hashlib.sha256(body).hexdigest()
    return body[:-1] + HASH_KEY + digest.encode() + b'"}\n', digest


@dataclass(frozen=True, slots=True)
class ParsedLine:
    """The chain fields of one line, read without parsing the event."""

    seq: int
    prev_hash: str
    stored_hash: str
    """The ``hash`` member as written in the line."""
    computed_hash: str
    """SHA-256 of the hashed bytes as they are now; differs from ``stored_hash`` if edited."""


def parse_line(line: bytes) -> ParsedLine | None:
    """The chain fields of ``line`` (no trailing newline), or None when it is not a record."""
    if len(line) < HASH_SUFFIX_LEN + 40 or line[-HASH_SUFFIX_LEN:][: len(HASH_KEY)] != HASH_KEY:
        return None
    if not line.endswith(b'"}'):
        return None
    body = hashed_bytes(line)
    # The chain members are the last two of the sorted body; rfind skips any look-alike keys
    # nested inside the event, which always come first.
    at = body.rfind(PREV_KEY)
    if at < 0:
        return None
    prev_start = at + len(PREV_KEY)
    prev_end = prev_start + 64
    if body[prev_end : prev_end + len(SEQ_KEY)] != SEQ_KEY:
        return None
    seq_text = body[prev_end + len(SEQ_KEY) : -1]
    if not seq_text.isdigit():
        return None
    return ParsedLine(
        seq=int(seq_text),
        prev_hash=body[prev_start:prev_end].decode("ascii", "replace"),
        stored_hash=stored_hash(line).decode("ascii", "replace"),
        computed_hash=hashlib.sha256(body).hexdigest(),
    )
