"""Alertmanager webhook (payload version 4) and Grafana's webhook contact point -> alerts.

One alert per entry of ``alerts[]``. Unknown fields are ignored: Alertmanager keeps adding
them (``notification_reason`` in 0.32, ``routeLabels`` in 0.34) and Grafana sends a superset.
Field choices (summary, service, environment, severity) are lists of ``labels.X`` /
``annotations.X`` references tried in order, configurable in :class:`AlertmanagerMapping`.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from shared.alert import Alert, AlertStatus
from shared.formats._common import Problem, build_alert
from shared.reasons import SCHEMA_VIOLATION
from shared.severity import SeverityTable

__all__ = ["ZERO_TIME", "AlertmanagerMapping", "convert", "looks_like_webhook"]

ZERO_TIME: Final = "0001-01-01T00:00:00Z"
"""Go's zero time: Alertmanager's ``endsAt`` of an alert that is still firing."""
_ID_KEY: Final = b"alertyard-alertmanager-id"
"""Separates these ids from other hashes of the same text (not a secret)."""
_FIRING: Final = AlertStatus.firing.value
_RESOLVED: Final = AlertStatus.resolved.value
_KEPT_ENVELOPE: Final = ("externalURL", "groupKey", "receiver")
_TEXT_ENVELOPE: Final = ("version", "status", "receiver")
"""Envelope fields the webhook schema (services/ingest/schemas.py) documents as text or null."""
_TEXT_ALERT: Final = ("status", "startsAt", "endsAt", "generatorURL", "fingerprint")
"""Alert fields documented as text or null: another type is refused, not silently dropped."""
_KEPT_ALERT: Final = (
    "generatorURL",
    "fingerprint",
    # Grafana's additions to each alert
    "silenceURL",
    "dashboardURL",
    "panelURL",
    "imageURL",
    "valueString",
)


class AlertmanagerMapping(BaseModel):
    """Which webhook fields become which alert fields (the first non-empty reference wins)."""

    model_config = ConfigDict(frozen=True)

    source: str = "alertmanager"
    """``source`` of alerts from an Alertmanager."""
    grafana_source: str = "grafana"
    """``source`` of alerts from Grafana (recognised by its ``orgId`` field)."""
    summary_from: list[str] = Field(
        default=["annotations.summary", "annotations.description", "labels.alertname"]
    )
    service_from: list[str] = Field(default=["labels.service", "labels.job"])
    environment_from: list[str] = Field(default=["labels.env", "labels.environment"])
    severity_from: list[str] = Field(default=["labels.severity"])
    """Where the severity is read; an alert without one gets the alert default (warning)."""


def looks_like_webhook(doc: Any) -> bool:
    """True for a JSON object shaped like an Alertmanager or Grafana webhook."""
    return (
        isinstance(doc, dict)
        and isinstance(doc.get("alerts"), list)
        and any(k in doc for k in ("version", "groupKey", "receiver"))
    )


def convert(
    doc: Any,
    *,
    mapping: AlertmanagerMapping,
    severities: SeverityTable,
    token_id: str = "",
) -> list[Alert | Problem]:
    """One :class:`Alert` or :class:`Problem` per entry of ``alerts[]``; a body that is not a
    webhook at all gives one problem with ``index=None``."""
    if not isinstance(doc, dict) or not isinstance(doc.get("alerts"), list):
        return [Problem.of(None, SCHEMA_VIOLATION, "expected an object with an 'alerts' list")]
    wrong = _not_text(doc, _TEXT_ENVELOPE)
    if wrong:
        return [Problem.of(None, SCHEMA_VIOLATION, f"'{wrong}' must be a string or null")]
    envelope = {k: doc[k] for k in _KEPT_ENVELOPE if isinstance(doc.get(k), str) and doc[k]}
    source = mapping.grafana_source if "orgId" in doc else mapping.source
    refs = _Refs(mapping)  # parsed once per webhook, not per alert
    return [
        _one(entry, index, envelope, source, refs, severities, token_id)
        for index, entry in enumerate(doc["alerts"])
    ]


class _Refs:
    """The mapping's ``labels.X`` / ``annotations.X`` references, split once."""

    __slots__ = ("environment", "service", "severity", "summary")

    def __init__(self, mapping: AlertmanagerMapping) -> None:
        self.summary = _split(mapping.summary_from)
        self.service = _split(mapping.service_from)
        self.environment = _split(mapping.environment_from)
        self.severity = _split(mapping.severity_from)


def _split(refs: list[str]) -> tuple[tuple[bool, str], ...]:
    """``(from_labels, name)`` pairs; anything but ``annotations.`` reads a label."""
    out = []
    for ref in refs:
        where, _, name = ref.partition(".")
        out.append((where != "annotations", name))
    return tuple(out)


def _one(
    entry: Any,
    index: int,
    envelope: dict[str, str],
    source: str,
    refs: _Refs,
    severities: SeverityTable,
    token_id: str,
) -> Alert | Problem:
    if not isinstance(entry, dict):
        return Problem.of(index, SCHEMA_VIOLATION, "alerts[] entries must be objects")
    labels = entry.get("labels") or {}
    annotations = entry.get("annotations") or {}
    if not isinstance(labels, dict) or not isinstance(annotations, dict):
        return Problem.of(index, SCHEMA_VIOLATION, "labels and annotations must be objects")
    if not all(isinstance(v, str) for v in (*labels.values(), *annotations.values())):
        return Problem.of(index, SCHEMA_VIOLATION, "label and annotation values must be strings")
    wrong = _not_text(entry, _TEXT_ALERT)
    if wrong:
        return Problem.of(index, SCHEMA_VIOLATION, f"'{wrong}' must be a string or null")
    status = entry.get("status", _FIRING)
    if status != _FIRING and status != _RESOLVED:
        return Problem.of(index, SCHEMA_VIOLATION, "status must be 'firing' or 'resolved'")
    fingerprint = entry.get("fingerprint")
    dedup_key = (
        fingerprint if isinstance(fingerprint, str) and fingerprint else _fingerprint(labels)
    )
    starts_at = entry.get("startsAt")
    fields: dict[str, Any] = {
        "id": _alert_id(dedup_key, status, starts_at),
        "dedup_key": dedup_key,
        "source": source,
        "summary": _first(labels, annotations, refs.summary) or "alert from Alertmanager",
        "status": status,
        "service": _first(labels, annotations, refs.service),
        "environment": _first(labels, annotations, refs.environment),
        "labels": labels,
        "annotations": annotations,
        "payload": {**envelope, **{k: entry[k] for k in _KEPT_ALERT if entry.get(k)}},
    }
    severity = _first(labels, annotations, refs.severity)
    if severity:
        fields["severity"] = severity
    if starts_at and starts_at != ZERO_TIME:
        fields["starts_at"] = starts_at
    ends_at = entry.get("endsAt")
    # A firing alert's endsAt is only when it would time out; it ended only once resolved.
    if status == _RESOLVED and ends_at and ends_at != ZERO_TIME:
        fields["ends_at"] = ends_at
    return build_alert(fields, index, severities, token_id)


def _not_text(doc: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    """The first of ``fields`` present with a value that is neither text nor null."""
    for name in fields:
        value = doc.get(name)
        if value is not None and not isinstance(value, str):
            return name
    return None


def _first(
    labels: dict[str, Any], annotations: dict[str, Any], refs: tuple[tuple[bool, str], ...]
) -> str:
    for from_labels, name in refs:
        value = (labels if from_labels else annotations).get(name)
        if value and isinstance(value, str) and not value.isspace():
            return value
    return ""


def _alert_id(dedup_key: str, status: str, starts_at: Any) -> str:
    """Stable per notification state: a retried webhook yields the same id (128-bit hex)."""
    seed = f"{dedup_key}/{status}/{starts_at}".encode("utf-8", "replace")
    return hashlib.blake2b(seed, digest_size=16, key=_ID_KEY).hexdigest()


def _fingerprint(labels: dict[str, Any]) -> str:
    """A stable key from the label set, for webhooks that carry no ``fingerprint``."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items(), key=lambda kv: str(kv[0])))
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16]
