"""Ingest service settings (``ALERTYARD_INGEST_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings._common import CommonSettings
from shared.settings.formats import FormatSettings
from shared.settings.severity import SeveritySettings

__all__ = ["IngestSettings"]


class IngestSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALERTYARD_INGEST_", extra="ignore", populate_by_name=True
    )

    http_host: str = "127.0.0.1"
    http_port: int = 8084
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest webhook or native body (413 above). PagerDuty's own limit, 512 KB, applies to
    ``/v2/enqueue``."""
    max_alerts_per_request: int = Field(default=1000, ge=1)
    """Most alerts one request may carry (413 ``too_many_alerts`` above); set Alertmanager's
    ``max_alerts`` at or below it."""
    produce_timeout_s: float = Field(default=10.0, gt=0)
    """Longest wait for Kafka's acks before answering 503, so Alertmanager retries."""
    retry_after_s: int = Field(default=5, ge=1)
    """``Retry-After`` of a 503 while Kafka is unreachable."""
    rate_limit: str = "6000/minute"
    """Requests per token (``limits`` notation, e.g. ``100/second``); empty disables it."""
    rate_limit_storage: str = "memory://"
    """Where the counters live: ``memory://`` (per process) or a ``redis://`` URL, so that
    every ingest process shares one budget per token."""
    producer_linger_ms: int = Field(default=2, ge=0)
    """Concurrent requests share produce requests within this window."""
    formats: FormatSettings = Field(default_factory=FormatSettings)
    """Field mappings of the formats (``ALERTYARD_FORMAT_*``), the same as the router's."""
    severity: SeveritySettings = Field(default_factory=SeveritySettings)
    """The severity table (``ALERTYARD_SEVERITY_*``), the same as the router's."""


def load() -> IngestSettings:
    return IngestSettings()
