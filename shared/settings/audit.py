"""Audit service settings (``ALERTYARD_AUDIT_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings._common import CommonSettings

__all__ = ["AuditSettings"]


class AuditSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALERTYARD_AUDIT_", extra="ignore", populate_by_name=True
    )

    http_host: str = "127.0.0.1"
    http_port: int = 8083
    group_id: str = "alertyard-audit"
    """Consumer group of the audit topic; offsets are committed only after an fsync."""
    log_dir: Path = Path("var/audit")
    """Segments, checkpoints, quarantine and (unless ``signing_key`` is set) the key pair."""
    segment_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)
    """A segment is closed and a new one started before it would grow past this size."""
    checkpoint_every_records: int = Field(default=1000, ge=1)
    """Sign the head once this many records are unsigned (checked after each batch) ..."""
    checkpoint_every_s: float = Field(default=30.0, gt=0)
    """... or once this long has passed with any record unsigned."""
    signing_key: SecretStr | None = None
    """Ed25519 private key (PEM, or hex of the 32-byte seed). Generated into log_dir if unset."""
    batch_max_records: int = Field(default=1000, ge=1)
    """Most Kafka records appended (and fsynced) as one batch."""
    fetch_max_wait_ms: int = Field(default=50, ge=1)
    """Broker-side wait of a fetch with no new data. Kept short: while one such fetch is in
    flight, aiokafka sends no other fetch to that broker, so a long wait stalls partitions that
    do have data (500 ms, the default, cut throughput in half)."""
    poll_timeout_ms: int = Field(default=500, ge=1)
    """How long one poll waits for records; also how often time-based checkpoints are checked."""


def load() -> AuditSettings:
    return AuditSettings()
