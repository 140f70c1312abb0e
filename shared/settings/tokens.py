"""Token service settings (``ALERTYARD_TOKENS_*``)."""

from __future__ import annotations

from typing import Final

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.durations import DurationSeconds, WholeSeconds
from shared.errors import InsecureSettingsError
from shared.settings._common import CommonSettings

__all__ = ["DEV_HMAC_SECRET", "MIN_HMAC_SECRET_CHARS", "TokensSettings"]

DEV_HMAC_SECRET: Final = "dev-only-change-me-0123456789abcdef"  # noqa: S105  # public on purpose; refused unless allowed
"""The built-in secret: public, so only for development (see ``allow_dev_hmac_secret``)."""
_KNOWN_PLACEHOLDERS: Final = frozenset({DEV_HMAC_SECRET, "change-me-in-production-0123456789"})
MIN_HMAC_SECRET_CHARS: Final = 32


class TokensSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALERTYARD_TOKENS_", extra="ignore", populate_by_name=True
    )

    http_host: str = "127.0.0.1"
    http_port: int = 8081
    hmac_secret: SecretStr = SecretStr(DEV_HMAC_SECRET)
    """Server secret for the at-rest HMAC of tokens and their checksum: a random value of at
    least 32 characters; changing it invalidates every issued token. Services refuse to start
    with the built-in one unless ``allow_dev_hmac_secret`` is set."""
    allow_dev_hmac_secret: bool = False
    """Development only: accept the built-in (public) secret or a short one. With it, anyone
    who reads this repository can compute token hashes and forge checksums."""
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

    def check_hmac_secret(self) -> None:
        """Raise :class:`InsecureSettingsError` for a placeholder or short secret (never
        quoting it) unless ``allow_dev_hmac_secret`` is set."""
        if self.allow_dev_hmac_secret:
            return
        secret = self.hmac_secret.get_secret_value()
        if secret in _KNOWN_PLACEHOLDERS:
            raise InsecureSettingsError(
                "ALERTYARD_TOKENS_HMAC_SECRET is the built-in development secret; set a random "
                "value (python -c 'import secrets; print(secrets.token_hex(32))'), or set "
                "ALERTYARD_TOKENS_ALLOW_DEV_HMAC_SECRET=1 for local development only"
            )
        if len(secret) < MIN_HMAC_SECRET_CHARS:
            raise InsecureSettingsError(
                f"ALERTYARD_TOKENS_HMAC_SECRET is shorter than {MIN_HMAC_SECRET_CHARS} "
                "characters; use a random value of at least 32 characters"
            )


def load() -> TokensSettings:
    return TokensSettings()
