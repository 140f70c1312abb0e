"""Token service settings (``ALERTYARD_TOKENS_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.settings._common import CommonSettings

__all__ = ["TokensSettings"]


class TokensSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALERTYARD_TOKENS_", extra="ignore", populate_by_name=True
    )

    http_host: str = "127.0.0.1"
    http_port: int = 8081
    hmac_secret: SecretStr = SecretStr("dev-only-change-me-0123456789abcdef")
    """Server secret for the at-rest HMAC of tokens. Set a long random value in production."""
    default_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)
    max_ttl_s: int = Field(default=365 * 24 * 3600, ge=60)
    cache_ttl_s: float = Field(default=5.0, ge=0)
    """How long a validated token stays in a process's cache (invalidated early via pub/sub)."""
    redis_down_grace_s: float = Field(default=30.0, ge=0)
    """How long cached tokens keep working while Redis is unreachable (fail closed after)."""


def load() -> TokensSettings:
    return TokensSettings()
