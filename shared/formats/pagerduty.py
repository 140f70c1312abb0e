"""PagerDuty Events API v2 (``/v2/enqueue``) -> one alert.

``routing_key`` is an alertyard token (PagerDuty clients put the key in the body). Limits are
PagerDuty's: summary 1,024 characters, dedup_key 255, body 512 KB (checked by the caller).
``trigger`` fires, ``resolve`` resolves, ``acknowledge`` stays firing with
``labels.event_action=acknowledge`` (the alert contract has no acknowledged state).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from shared.alert import Alert, AlertStatus
from shared.formats._common import Problem, build_alert
from shared.reasons import SCHEMA_VIOLATION
from shared.severity import SeverityTable

__all__ = ["MAX_BODY_BYTES", "Event", "convert", "looks_like_event"]

MAX_BODY_BYTES: Final = 512 * 1024
MAX_SUMMARY_CHARS: Final = 1024
MAX_DEDUP_KEY_CHARS: Final = 255
ACTIONS: Final = ("trigger", "acknowledge", "resolve")
_SOURCE: Final = "pagerduty"


@dataclass(slots=True)
class Event:
    """The outcome of converting one event: the alert, or PagerDuty-style error strings."""

    dedup_key: str
    routing_key: str | None
    alert: Alert | None = None
    errors: list[str] = field(default_factory=list)
    reason: str = SCHEMA_VIOLATION
    """The alertyard reason code of the first error (``schema_violation``, ...)."""


def looks_like_event(doc: Any) -> bool:
    return isinstance(doc, dict) and "event_action" in doc


def routing_key(doc: Any) -> str | None:
    key = doc.get("routing_key") if isinstance(doc, dict) else None
    return key if isinstance(key, str) and key else None


def convert(
    doc: Any,
    *,
    severities: SeverityTable,
    new_dedup_key: Callable[[], str],
    token_id: str = "",
) -> Event:
    """Validate ``doc`` as an Events v2 event and build its alert (``new_dedup_key`` names a
    triggered event that carries none)."""
    if not isinstance(doc, dict):
        return Event("", None, errors=["Event object must be a JSON object"])
    errors: list[str] = []
    action = doc.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' must be one of trigger, acknowledge, resolve")
    if routing_key(doc) is None:
        errors.append("'routing_key' is missing or blank")
    dedup_key = doc.get("dedup_key")
    if dedup_key is not None and not isinstance(dedup_key, str):
        errors.append("'dedup_key' must be a string")
        dedup_key = None
    elif isinstance(dedup_key, str) and len(dedup_key) > MAX_DEDUP_KEY_CHARS:
        errors.append(f"'dedup_key' is longer than {MAX_DEDUP_KEY_CHARS} characters")
    if not dedup_key and action in ("acknowledge", "resolve"):
        errors.append(f"'dedup_key' is required to {action}")
    payload = doc.get("payload")
    if action == "trigger" or payload is not None:
        errors.extend(_payload_errors(payload))
    event = Event(dedup_key or "", routing_key(doc), errors=errors)
    if errors:
        return event
    if not event.dedup_key:
        event.dedup_key = new_dedup_key()
    built = build_alert(_fields(doc, event.dedup_key, str(action)), None, severities, token_id)
    if isinstance(built, Problem):
        event.errors.append(built.detail)
        event.reason = built.reason
    else:
        event.alert = built
    return event


def _payload_errors(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["'payload' must be an object"]
    errors = []
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        errors.append("'payload.summary' is missing or blank")
    elif len(summary) > MAX_SUMMARY_CHARS:
        errors.append(f"'payload.summary' is longer than {MAX_SUMMARY_CHARS} characters")
    source = payload.get("source")
    if not isinstance(source, str) or not source.strip():
        errors.append("'payload.source' is missing or blank")
    if not isinstance(payload.get("severity"), str):
        errors.append("'payload.severity' is missing (critical, error, warning or info)")
    for name in ("component", "group", "class", "timestamp"):
        if name in payload and not isinstance(payload[name], str):
            errors.append(f"'payload.{name}' must be a string")
    return errors


def _event_id(dedup_key: str, action: str, payload: dict[str, Any]) -> str:
    """Stable for a retried event (same key, action and payload; never the routing key)."""
    try:
        body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # keys that are not strings cannot come from JSON, but be safe
        body = repr(payload).encode()
    seed = dedup_key.encode() + b"\x00" + action.encode() + b"\x00" + body
    return hashlib.blake2b(seed, digest_size=16, key=b"alertyard-pagerduty-id").hexdigest()


def _fields(doc: dict[str, Any], dedup_key: str, action: str) -> dict[str, Any]:
    payload: dict[str, Any] = doc.get("payload") or {}
    labels = {
        name: payload[name] for name in ("group", "class") if isinstance(payload.get(name), str)
    }
    labels["event_action"] = action
    kept = {
        name: doc[name]
        for name in ("client", "client_url", "links", "images")
        if doc.get(name) is not None
    }
    details = payload.get("custom_details")
    if details is not None:
        kept["custom_details"] = details if isinstance(details, dict) else {"value": details}
    fields: dict[str, Any] = {
        "id": _event_id(dedup_key, action, payload),
        "dedup_key": dedup_key,
        "source": payload.get("source") or _SOURCE,
        "summary": payload.get("summary") or f"{action} {dedup_key}",
        "status": AlertStatus.resolved.value if action == "resolve" else AlertStatus.firing.value,
        "service": payload.get("component", ""),
        "labels": labels,
        "payload": kept,
    }
    if isinstance(payload.get("severity"), str):
        fields["severity"] = payload["severity"]
    if payload.get("timestamp"):
        fields["starts_at"] = payload["timestamp"]
    return fields
