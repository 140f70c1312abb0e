"""Token service settings (``ALERTYARD_TOKENS_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.durations import DurationSeconds, WholeSeconds
from shared.settings._common import CommonSettings

__all__ = ["TokensSettings"]


class TokensSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALERTYARD_TOKENS_", extra="ignore", populate_by_name=True
    )

    http_host: str = "127.0.0.1"
    http_port: int = 8081
    hmac_secret: SecretStr = SecretStr("dev-only-change-me-0123456789abcdef")
    """Server secret for the at-rest HMAC of tokens and their checksum. Set a long random value
    in production; changing it invalidates every issued token."""
    default_ttl_s: WholeSeconds = Field(default=30 * 24 * 3600, ge=60)
    """Expiry of a token created without an explicit one."""
    max_ttl_s: WholeSeconds = Field(default=365 * 24 * 3600, ge=60)
    """Longest expiry a token may be given."""
    max_rotation_grace_s: WholeSeconds = Field(default=24 * 3600, ge=0, le=24 * 3600)
    """Longest time the old secret keeps working after a rotation (never more than 24 h)."""
    cache_ttl_s: DurationSeconds = Field(default=5.0, ge=0)
    """How long a validated token stays in a process's cache (invalidated early via pub/sub)."""
    redis_down_grace_s: DurationSeconds = Field(default=30.0, ge=0)
    """How long cached tokens keep working while Redis is unreachable (fail closed after)."""
    cache_max_entries: int = Field(default=100_000, ge=1)
    """Validated tokens a process keeps cached; past this the least recently used go first."""
    last_used_throttle_s: DurationSeconds = Field(default=60.0, ge=0)
    """At most one ``last_used_at`` write per token per this many seconds, per process."""
    invalidation_channel: str = "alertyard:tokens:invalidate"
    """Redis pub/sub channel that tells every validator to drop cached principals."""
    expiry_sweep_interval_s: DurationSeconds = Field(default=30.0, gt=0)
    """How often ``serve`` looks for tokens past their expiry and emits ``token.expired``."""
    auth_fail_limit: int = Field(default=20, ge=1)
    """Failed authentications allowed per source IP per window before answering 429."""
    auth_fail_window_s: DurationSeconds = Field(default=60.0, gt=0)


def load() -> TokensSettings:
    return TokensSettings()
