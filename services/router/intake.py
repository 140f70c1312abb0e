"""First look at a consumed record: size, authorization header, UTF-8, JSON and schema.

Everything here is pure CPU work with no I/O, so a whole batch is inspected before any token
is looked up. A bad message becomes a :class:`~services.router.rejects.Rejection`, never an
exception.

Severities are normalised through the severity table (``high`` -> error); a record in another
format (Alertmanager webhook v4, PagerDuty Events v2: the ``alertyard-format`` header, or
detected by shape) becomes one inbound per alert it holds. A topic bound to a token in the
settings serves sources that cannot set record headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from confluent_kafka import Message
from pydantic import ValidationError

from services.router import rejects
from services.router.rejects import Rejection
from shared.alert import MAX_ALERT_BYTES, Alert, AlertView
from shared.alert_decode import decode_alert
from shared.formats import Format, Problem, alertmanager, detect, pagerduty
from shared.formats.detect import FORMAT_HEADER
from shared.headers import AUTHORIZATION, bearer_token
from shared.reasons import describe_validation_error
from shared.severity import DEFAULT_TABLE, SeverityTable, UnmappedSeverityError

__all__ = [
    "Inbound",
    "IntakeOptions",
    "inspect_batch",
    "inspect_record",
    "inspect_record_all",
    "parse_value",
]

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
    alert: AlertView | None = None
    """A native alert on the fast path is msgspec's view, not a pydantic ``Alert``."""
    rejection: Rejection | None = None
    rewritten: bool = False
    """The alert differs from ``value`` (severity normalised, converted from another format):
    it is published re-serialised, not as the producer's bytes."""


@dataclass(frozen=True, slots=True)
class IntakeOptions:
    """What intake needs from the settings."""

    severities: SeverityTable = DEFAULT_TABLE
    topic_tokens: Mapping[str, str] = field(default_factory=dict)
    """Topic -> token for records without an authorization header (sources that cannot set
    record headers, e.g. Alertmanager's Kafka receiver)."""
    alertmanager: alertmanager.AlertmanagerMapping = field(
        default_factory=alertmanager.AlertmanagerMapping
    )


DEFAULT_OPTIONS: Final = IntakeOptions()


def inspect_batch(
    records: Iterable[Message], options: IntakeOptions = DEFAULT_OPTIONS
) -> list[Inbound]:
    """:func:`inspect_record_all` for every record (a librdkafka ``Message``) of a batch, in
    order.

    The records of a batch mostly carry the same few authorization headers: each distinct
    header is parsed once.
    """
    tokens: dict[bytes, str | Rejection] = {}
    inbounds: list[Inbound] = []
    add, extend = inbounds.append, inbounds.extend
    for r in records:
        found = _inspect(
            r.topic() or "",
            r.partition() or 0,
            r.offset() or 0,
            r.key(),
            r.value(),
            r.headers(),
            r.timestamp()[1],
            tokens,
            options,
        )
        if len(found) == 1:
            add(found[0])
        else:
            extend(found)
    return inbounds


def inspect_record(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
    timestamp_ms: int,
    options: IntakeOptions = DEFAULT_OPTIONS,
) -> Inbound:
    """Check one record without I/O; the result holds either a parsed alert or a rejection
    (the first alert's, for a record in a format that holds several)."""
    return inspect_record_all(topic, partition, offset, key, value, headers, timestamp_ms, options)[
        0
    ]


def inspect_record_all(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
    timestamp_ms: int,
    options: IntakeOptions = DEFAULT_OPTIONS,
) -> list[Inbound]:
    """One inbound per alert the record holds (one for native alerts), at least one."""
    return _inspect(topic, partition, offset, key, value, headers, timestamp_ms, {}, options)


def _inspect(
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Any,
    timestamp_ms: int,
    tokens: dict[bytes, str | Rejection],
    options: IntakeOptions,
) -> list[Inbound]:
    body = value or b""
    inbound = Inbound(topic, partition, offset, key, body)
    if len(body) > MAX_ALERT_BYTES:
        inbound.rejection = Rejection.of(
            rejects.OVERSIZED, f"message is {len(body)} bytes; the limit is {MAX_ALERT_BYTES}"
        )
        return [inbound]
    raw, declared = _read_headers(headers)
    if raw is None:
        bound = options.topic_tokens.get(topic)
        if bound is None:
            inbound.rejection = Rejection.of(
                rejects.MISSING_TOKEN, "no 'authorization: Bearer <token>' header"
            )
            return [inbound]
        token: str | Rejection = bound
    else:
        cached = tokens.get(raw)
        if cached is None:
            cached = tokens[raw] = _token(raw)
        token = cached
    if isinstance(token, Rejection):
        inbound.rejection = token
        return [inbound]
    inbound.token = token
    if declared is not None and declared not in _FORMATS:
        inbound.rejection = Rejection.of(
            rejects.SCHEMA_VIOLATION,
            f"unknown {FORMAT_HEADER} header; use one of {', '.join(f.value for f in Format)}",
        )
        return [inbound]
    fmt = _FORMATS[declared] if declared is not None else None
    as_native: Rejection | None = None
    if fmt in (None, Format.native):
        parsed, rewritten = _parse(body, options.severities)
        if isinstance(parsed, Alert):
            inbound.alert = _fill_defaults(parsed, topic, partition, offset, timestamp_ms)
            inbound.rewritten = rewritten
            return [inbound]
        if not isinstance(parsed, Rejection):  # the fast path's view: it came with an id
            inbound.alert = parsed
            return [inbound]
        if fmt is Format.native or parsed.reason != rejects.SCHEMA_VIOLATION:
            inbound.rejection = parsed
            return [inbound]
        as_native = parsed  # perhaps another format: detect it by shape
    converted = _foreign(inbound, fmt, options, timestamp_ms)
    if converted:
        return converted
    inbound.rejection = as_native or Rejection.of(rejects.SCHEMA_VIOLATION, "no alerts")
    return [inbound]


_FORMATS: Final = {f.value.encode(): f for f in Format}


def _read_headers(headers: Any) -> tuple[bytes | None, bytes | None]:
    """The authorization and format header values (names case-insensitive, the first of each
    counts): one pass over the record's headers for both."""
    raw = declared = None
    seen_auth = seen_format = False
    for name, value in headers or ():
        lowered = name if name == AUTHORIZATION else name.lower()
        if lowered == AUTHORIZATION:
            if not seen_auth:
                seen_auth, raw = True, value
        elif lowered == FORMAT_HEADER and not seen_format:
            seen_format, declared = True, value
    return raw, declared


def parse_value(body: bytes, severities: SeverityTable = DEFAULT_TABLE) -> Alert | Rejection:
    """The payload checks alone (size, UTF-8, JSON, schema, severity): the alert, or why not.

    The router runs them after the token checks; tools that replay a topic (the rules
    backtest) run them alone, so both agree on what counts as a valid alert.
    """
    return _parse_model(body, severities)[0]


def _parse(body: bytes, severities: SeverityTable) -> tuple[AlertView | Rejection, bool]:
    """:func:`_parse_model`, but a native alert the fast path can judge is its msgspec view."""
    if len(body) <= MAX_ALERT_BYTES:
        fast = decode_alert(body)  # the common case; None sends it down pydantic's path
        if fast is not None:
            return fast, False
    return _parse_model(body, severities)


def _parse_model(body: bytes, severities: SeverityTable) -> tuple[Alert | Rejection, bool]:
    """The alert (and whether it differs from ``body``), or the rejection."""
    if len(body) > MAX_ALERT_BYTES:
        return Rejection.of(
            rejects.OVERSIZED, f"message is {len(body)} bytes; the limit is {MAX_ALERT_BYTES}"
        ), False
    try:
        # pydantic refuses bad UTF-8 anywhere, so the separate check runs only on refusal,
        # where it words the reason (tests/unit/router/test_intake_scan.py pins this)
        return Alert.model_validate_json(body), False
    except ValidationError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            return Rejection.of(
                rejects.INVALID_UTF8, f"value is not UTF-8 (byte {bad.start})"
            ), False
        if not any(e["loc"][:1] == ("severity",) for e in exc.errors()):
            return _schema_rejection(exc), False
    # The slow path, only for a severity outside the canonical four (``high``, ``Critical``).
    try:
        fields = orjson.loads(body)
    except orjson.JSONDecodeError as exc:  # a JSON corner orjson and pydantic disagree on
        return Rejection.of(rejects.INVALID_JSON, str(exc)), False
    if not isinstance(fields, dict):
        return Rejection.of(rejects.SCHEMA_VIOLATION, "<root>: expected an object"), False
    try:
        severities.normalise_fields(fields)
    except UnmappedSeverityError as exc:
        return Rejection.of(exc.code, str(exc)), False
    try:
        return Alert.model_validate(fields), True
    except ValidationError as exc:
        return _schema_rejection(exc), False


def _foreign(
    inbound: Inbound, fmt: Format | None, options: IntakeOptions, timestamp_ms: int
) -> list[Inbound]:
    """Inbounds for a record in another format; empty when it is not in one after all."""
    try:
        doc = orjson.loads(inbound.value)
    except orjson.JSONDecodeError as exc:
        return [replace(inbound, rejection=Rejection.of(rejects.INVALID_JSON, str(exc)))]
    fmt = fmt or detect(doc)
    if fmt is Format.alertmanager:
        results: list[Alert | Problem] = list(
            alertmanager.convert(doc, mapping=options.alertmanager, severities=options.severities)
        )
    elif fmt is Format.pagerduty:
        seed = f"{inbound.topic}/{inbound.partition}/{inbound.offset}"
        event = pagerduty.convert(
            doc,
            severities=options.severities,
            new_dedup_key=lambda: uuid.uuid5(_ID_NAMESPACE, seed).hex,
        )
        results = [
            event.alert
            if event.alert is not None
            else Problem.of(None, event.reason, "; ".join(event.errors))
        ]
    else:
        return []
    out = []
    for result in results:
        if isinstance(result, Problem):
            where = f"alerts[{result.index}]: " if result.index is not None else ""
            rejection = Rejection.of(result.reason, where + result.detail)
            out.append(replace(inbound, rejection=rejection))
        else:
            alert = _fill_defaults(
                result, inbound.topic, inbound.partition, inbound.offset, timestamp_ms
            )
            out.append(replace(inbound, alert=alert, rewritten=True))
    if not out:  # an empty webhook: nothing to route, but the record is not silently dropped
        out.append(replace(inbound, rejection=Rejection.of(rejects.SCHEMA_VIOLATION, "no alerts")))
    return out


def _token(raw: bytes) -> str | Rejection:
    try:
        token = bearer_token([(AUTHORIZATION, raw)])
    except ValueError as exc:  # the message never echoes the header value
        return Rejection.of(rejects.MALFORMED_AUTHORIZATION, str(exc))
    if token is None:  # a header without a value
        return Rejection.of(rejects.MALFORMED_AUTHORIZATION, "authorization header is empty")
    return token


def _schema_rejection(exc: ValidationError) -> Rejection:
    return Rejection.of(*describe_validation_error(exc))


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
