"""Events that never enter the chain: kept in ``quarantine.jsonl`` with the reason why.

The quarantine is written and fsynced before the batch's offsets are committed, so a bad event
is never silently dropped. Its raw value is stored as text with anything token-shaped redacted
(a malformed event may carry a secret) and cut at 64 KiB; its SHA-256 is kept in full.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from pydantic import Json, TypeAdapter, ValidationError

from services.audit.segments import cut_torn_tail, fsync_dir
from shared.auth import TOKEN_RE, redact_tokens
from shared.events import Event

__all__ = ["QUARANTINE_FILE", "Quarantine", "Rejected", "decode_event", "decode_events"]

QUARANTINE_FILE: Final = "quarantine.jsonl"
_MAX_STORED: Final = 64 * 1024
_TOKEN_BYTES: Final = re.compile(TOKEN_RE.pattern.encode())
"""TOKEN_RE on raw bytes: no decode on the hot path (token characters are ASCII)."""
_TOKEN_PREFIXES: Final = (b"ayg_", b"ayt_", b"ayu_")
"""Every TOKEN_RE match starts with one of these (a test keeps them in step with the pattern)."""
_EVENT_BATCH: Final = TypeAdapter(list[Json[Event]])
"""Parses and validates a whole batch of raw values in one pydantic call."""


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why one Kafka record is not an event."""

    reason: str
    """A stable code: ``empty``, ``not_utf8``, ``contains_secret`` or ``invalid_event``."""
    detail: str


def decode_event(value: bytes | None) -> Event | Rejected:
    """The event in a Kafka record value, or why it is not one."""
    if not value:
        return Rejected("empty", "the record has no value")
    if _TOKEN_BYTES.search(value):
        # The log is append-only forever: a leaked secret in it could never be removed.
        return Rejected("contains_secret", "the event holds a token-shaped string")
    try:
        return Event.model_validate_json(value)
    except ValidationError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as bad:
            return Rejected("not_utf8", f"not UTF-8 at byte {bad.start}")
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            for e in exc.errors()[:5]
        )
        return Rejected("invalid_event", redact_tokens(fields))


def decode_events(values: Sequence[bytes | None]) -> list[Event | Rejected]:
    """:func:`decode_event` of each value (same results, same order), batched for speed.

    One regex scan covers the whole batch and one pydantic call validates every candidate; only
    when that call finds a bad value are the candidates decoded one by one, for their reasons.
    """
    secrets = _values_with_secrets(values)
    if not secrets and all(values):  # the usual batch: every value is a candidate
        try:
            return list(_EVENT_BATCH.validate_python(values))
        except ValidationError:
            return [decode_event(value) for value in values]
    results: list[Event | Rejected | None] = [None] * len(values)
    candidates: list[int] = []
    for index, value in enumerate(values):
        if not value or index in secrets:
            results[index] = decode_event(value)
        else:
            candidates.append(index)
    decoded_candidates: list[Event] | list[Event | Rejected]
    try:
        decoded_candidates = _EVENT_BATCH.validate_python([values[i] for i in candidates])
    except ValidationError:
        decoded_candidates = [decode_event(values[i]) for i in candidates]
    for index, decoded in zip(candidates, decoded_candidates, strict=True):
        results[index] = decoded
    return [r for r in results if r is not None]


def _values_with_secrets(values: Sequence[bytes | None]) -> set[int]:
    """Indexes of the values with a token-shaped string, found in one scan of them all.

    The values are joined with newlines: the pattern cannot match a newline and ``\\b`` sees one
    just as it sees the end of a value, so a match never spans two values and each value's
    matches are exactly its own.
    """
    joined = b"\n".join(value or b"" for value in values)
    if not any(prefix in joined for prefix in _TOKEN_PREFIXES):
        return set()  # the usual case: a substring search is far cheaper than the regex
    starts: list[int] = []
    at = 0
    for value in values:
        starts.append(at)
        at += len(value or b"") + 1
    return {bisect_right(starts, m.start()) - 1 for m in _TOKEN_BYTES.finditer(joined)}


class Quarantine:
    """Appends rejected records to ``<log dir>/quarantine.jsonl``, once per Kafka offset."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / QUARANTINE_FILE
        self._seen: set[tuple[str, int, int]] = set()
        if self.path.exists():
            for line in cut_torn_tail(self.path, self.path.read_bytes()).splitlines():
                try:
                    doc = json.loads(line)
                    self._seen.add((doc["topic"], int(doc["partition"]), int(doc["offset"])))
                except (ValueError, KeyError, TypeError):
                    continue  # kept as written; only its offset is unknown
        self.count = len(self._seen)

    def add(
        self,
        entries: list[tuple[str, int, int, bytes | None, bytes | None, Rejected]],
    ) -> int:
        """Write ``(topic, partition, offset, key, value, rejected)`` entries and fsync them;
        returns how many were new (a redelivered offset is not written twice)."""
        lines = []
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for topic, partition, offset, key, value, rejected in entries:
            if (topic, partition, offset) in self._seen:
                continue
            self._seen.add((topic, partition, offset))
            raw = value or b""
            doc = {
                "time": now,
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "key": redact_tokens((key or b"").decode("utf-8", "replace")),
                "reason": rejected.reason,
                "detail": rejected.detail,
                "value": redact_tokens(raw[:_MAX_STORED].decode("utf-8", "replace")),
                "value_bytes": len(raw),
                "value_sha256": hashlib.sha256(raw).hexdigest(),
            }
            lines.append(json.dumps(doc, ensure_ascii=False).encode() + b"\n")
        if not lines:
            return 0
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            data = b"".join(lines)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            fsync_dir(self.path.parent)
        self.count += len(lines)
        return len(lines)
