"""The on-disk record: one canonical JSON line per event, chained by SHA-256.

A record line is the canonical JSON (keys sorted, no spaces, UTF-8) of
``{"event": ..., "prev_hash": ..., "seq": ...}`` with ``"hash"`` appended as the last member::

    {"event":{...},"prev_hash":"<64 hex>","seq":42,"hash":"<64 hex>"}\\n

``hash`` is SHA-256 over the line without the ``,"hash":"..."`` member, i.e. over the bytes
``line[:-75] + b"}"``. Because the hashed bytes sit verbatim in the file, a verifier hashes them
as they are (no re-serialisation), which is both exact and fast.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "CANONICAL_ENCODER",
    "GENESIS_HASH",
    "ParsedLine",
    "canonical_json",
    "chain_records",
    "encode_record",
    "parse_line",
]

GENESIS_HASH: Final = "0" * 64
"""``prev_hash`` of the first record (seq 1)."""

_HASH_KEY: Final = b',"hash":"'
_SUFFIX_LEN: Final = len(_HASH_KEY) + 64 + len(b'"}')  # ,"hash":"<64 hex>"}
_PREV_KEY: Final = b',"prev_hash":"'
_SEQ_KEY: Final = b'","seq":'

CANONICAL_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
"""What ``json.dumps(sort_keys=True, ...)`` builds on every call, built once (the C encoder)."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: the bytes that get hashed and signed."""
    return CANONICAL_ENCODER.encode(value).encode()


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
    return body[:-1] + _HASH_KEY + digest.encode() + b'"}\n', digest


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
    if len(line) < _SUFFIX_LEN + 40 or line[-_SUFFIX_LEN:][: len(_HASH_KEY)] != _HASH_KEY:
        return None
    if not line.endswith(b'"}'):
        return None
    body = line[:-_SUFFIX_LEN] + b"}"
    # The chain members are the last two of the sorted body; rfind skips any look-alike keys
    # nested inside the event, which always come first.
    at = body.rfind(_PREV_KEY)
    if at < 0:
        return None
    prev_start = at + len(_PREV_KEY)
    prev_end = prev_start + 64
    if body[prev_end : prev_end + len(_SEQ_KEY)] != _SEQ_KEY:
        return None
    seq_text = body[prev_end + len(_SEQ_KEY) : -1]
    if not seq_text.isdigit():
        return None
    return ParsedLine(
        seq=int(seq_text),
        prev_hash=body[prev_start:prev_end].decode("ascii", "replace"),
        stored_hash=line[-_SUFFIX_LEN + len(_HASH_KEY) : -2].decode("ascii", "replace"),
        computed_hash=hashlib.sha256(body).hexdigest(),
    )
