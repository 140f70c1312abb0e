"""What the ingest endpoints take, as OpenAPI documents it.

The converters in ``shared.formats`` read these bodies leniently (Alertmanager, Grafana and
PagerDuty clients send fields we do not know, and each alert is refused on its own with a
reason), so these models describe the documents and allow extra fields; the native endpoint's
alerts are :class:`shared.alert.Alert` itself.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AlertmanagerAlert",
    "AlertmanagerWebhook",
    "PagerDutyError",
    "PagerDutyEvent",
    "PagerDutyPayload",
]

_OPEN = ConfigDict(extra="allow")


class AlertmanagerAlert(BaseModel):
    model_config = _OPEN

    status: str | None = None
    """``firing`` or ``resolved``."""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    startsAt: str | None = None  # noqa: N815  # Alertmanager's spelling
    endsAt: str | None = None  # noqa: N815  # Alertmanager's spelling
    generatorURL: str | None = None  # noqa: N815  # Alertmanager's spelling
    fingerprint: str | None = None


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook payload (version 4) or a Grafana webhook contact point's."""

    model_config = _OPEN

    version: str | None = None
    status: str | None = None
    receiver: str | None = None
    alerts: list[AlertmanagerAlert]


class PagerDutyPayload(BaseModel):
    model_config = _OPEN

    summary: str
    source: str
    severity: str
    """``critical``, ``error``, ``warning`` or ``info`` (or a name the severity table maps)."""


class PagerDutyEvent(BaseModel):
    """A PagerDuty Events API v2 event; ``routing_key`` is an alertyard token."""

    model_config = _OPEN

    routing_key: str = Field(min_length=1)
    event_action: Literal["trigger", "acknowledge", "resolve"]
    dedup_key: str | None = Field(default=None, max_length=255)
    payload: PagerDutyPayload | None = None
    """Required for ``trigger``."""


class PagerDutyError(BaseModel):
    """PagerDuty's error shape (its clients read it), plus our stable ``code``."""

    status: str
    message: str
    errors: list[str]
    code: str
