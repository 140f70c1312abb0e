"""Router service settings (``ALERTYARD_ROUTER_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings._common import CommonSettings

__all__ = ["RouterSettings"]


class RouterSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALERTYARD_ROUTER_", extra="ignore", populate_by_name=True
    )

    http_host: str = "127.0.0.1"
    http_port: int = 8082
    group_id: str = "alertyard-router"
    batch_max_records: int = Field(default=500, ge=1)
    batch_timeout_ms: int = Field(default=50, ge=1)
    decision_retention_s: int = Field(default=7 * 24 * 3600, ge=60)
    """How long alert lookups (``GET /v1/alerts/{id}``) keep a routing decision."""


def load() -> RouterSettings:
    return RouterSettings()
