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
    log_dir: Path = Path("var/audit")
    segment_max_bytes: int = Field(default=64 * 1024 * 1024, ge=4096)
    checkpoint_every_records: int = Field(default=1000, ge=1)
    checkpoint_every_s: float = Field(default=30.0, gt=0)
    signing_key: SecretStr | None = None
    """Ed25519 private key (PEM, or hex of the 32-byte seed). Generated into log_dir if unset."""


def load() -> AuditSettings:
    return AuditSettings()
