"""First look at a consumed record: size, authorization header, UTF-8, JSON and schema.

Everything here is pure CPU work with no I/O, so a whole batch is inspected before any token
is looked up. A bad message becomes a :class:`~services.router.rejects.Rejection`, never an
exception.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from services.router import rejects
from services.router.rejects import Rejection
from shared.alert import MAX_ALERT_BYTES, Alert
from shared.headers import AUTHORIZATION, bearer_token

__all__ = ["Inbound", "inspect_batch", "inspect_record", "parse_value"]

_ID_NAMESPACE: Final = uuid.UUID("6f1c7c1e-3f57-4d0a-9a3e-2b1e6a0f5c11")


@dataclass(slots=True)
class Inbound:
    """One consumed record and what the router learned from it so far."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    token: str | None = None
    alert: Alert | None = None
    rejection: Rejection | None = None


def inspect_batch(records: Iterable[ConsumerRecord[bytes, bytes]]) -> list[Inbound]:
    """:func:`inspect_record` for every record of a batch, in order.

    The records of a batch mostly carry the same few authorization headers: each distinct
    header is parsed once.
    """
    tokens: dict[bytes, str | Rejection] = {}
    return [
        _inspect(r.topic, r.partition, r.offset, r.key, r.value, r.headers, r.timestamp, tokens)
        for r in records
    ]


def inspect_record(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
    timestamp_ms: int,
) -> Inbound:
    """Check one record without I/O; the result holds either a parsed alert or a rejection."""
    return _inspect(topic, partition, offset, key, value, headers, timestamp_ms, {})


def _inspect(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
    timestamp_ms: int,
    tokens: dict[bytes, str | Rejection],
) -> Inbound:
    body = value or b""
    inbound = Inbound(topic, partition, offset, key, body)
    if len(body) > MAX_ALERT_BYTES:
        inbound.rejection = Rejection.of(
            rejects.OVERSIZED, f"message is {len(body)} bytes; the limit is {MAX_ALERT_BYTES}"
        )
        return inbound
    raw = None
    for name, header in headers or ():
        if name == AUTHORIZATION or name.lower() == AUTHORIZATION:  # the first one counts
            raw = header
            break
    if raw is None:
        inbound.rejection = Rejection.of(
            rejects.MISSING_TOKEN, "no 'authorization: Bearer <token>' header"
        )
        return inbound
    token = tokens.get(raw)
    if token is None:
        token = tokens[raw] = _token(raw)
    if isinstance(token, Rejection):
        inbound.rejection = token
        return inbound
    inbound.token = token
    parsed = parse_value(body)
    if isinstance(parsed, Rejection):
        inbound.rejection = parsed
        return inbound
    inbound.alert = _fill_defaults(parsed, topic, partition, offset, timestamp_ms)
    return inbound


def parse_value(body: bytes) -> Alert | Rejection:
    """The payload checks alone (size, UTF-8, JSON, schema): the alert, or why not.

    The router runs them after the token checks; tools that replay a topic (the rules
    backtest) run them alone, so both agree on what counts as a valid alert.
    """
    if len(body) > MAX_ALERT_BYTES:
        return Rejection.of(
            rejects.OVERSIZED, f"message is {len(body)} bytes; the limit is {MAX_ALERT_BYTES}"
        )
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection.of(rejects.INVALID_UTF8, f"value is not UTF-8 (byte {exc.start})")
    try:
        return Alert.model_validate_json(body)
    except ValidationError as exc:
        return _schema_rejection(exc)


def _token(raw: bytes) -> str | Rejection:
    try:
        token = bearer_token([(AUTHORIZATION, raw)])
    except ValueError as exc:  # the message never echoes the header value
        return Rejection.of(rejects.MALFORMED_AUTHORIZATION, str(exc))
    if token is None:  # a header without a value
        return Rejection.of(rejects.MALFORMED_AUTHORIZATION, "authorization header is empty")
    return token


def _schema_rejection(exc: ValidationError) -> Rejection:
    errors = exc.errors(include_input=False, include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        msg = next(e["msg"] for e in errors if e["type"] == "json_invalid")
        return Rejection.of(rejects.INVALID_JSON, msg)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:5]]
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return Rejection.of(rejects.SCHEMA_VIOLATION, "; ".join(parts) + more)


def _fill_defaults(
    alert: Alert, topic: str, partition: int, offset: int, timestamp_ms: int
) -> Alert:
    """Derive a missing ``id`` (and then ``starts_at``) from the record, not from the clock.

    A redelivered record then yields the same alert id, so consumers can dedupe on it.
    """
    if "id" in alert.model_fields_set:
        return alert  # the common case: nothing to fill, the original bytes are published
    alert_id = uuid.uuid5(_ID_NAMESPACE, f"{topic}/{partition}/{offset}").hex
    update: dict[str, Any] = {"id": alert_id}
    if alert.dedup_key == alert.id:  # defaulted to the generated id
        update["dedup_key"] = alert_id
    if "starts_at" not in alert.model_fields_set and timestamp_ms > 0:
        update["starts_at"] = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    return alert.model_copy(update=update)
