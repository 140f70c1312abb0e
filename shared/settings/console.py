"""Console settings (``ALERTYARD_CONSOLE_*``)."""

from __future__ import annotations

import base64

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings._common import CommonSettings

__all__ = ["ConsoleSettings"]


class ConsoleSettings(CommonSettings):
    model_config = SettingsConfigDict(
        env_prefix="ALERTYARD_CONSOLE_", extra="ignore", populate_by_name=True
    )

    http_host: str = "127.0.0.1"
    http_port: int = 8085
    tokens_url: str = Field(
        default="http://127.0.0.1:8081", validation_alias="ALERTYARD_TOKENS_URL"
    )
    """The token service's HTTP API (the same variable the CLI reads)."""
    router_url: str = Field(
        default="http://127.0.0.1:8082", validation_alias="ALERTYARD_ROUTER_URL"
    )
    """The router's HTTP API: alert decisions and rules."""
    audit_url: str = Field(default="http://127.0.0.1:8083", validation_alias="ALERTYARD_AUDIT_URL")
    session_key: SecretStr | None = None
    """Fernet key (urlsafe base64 of 32 bytes) that encrypts the tokens held in sessions. Unset:
    a random key per process, so sessions end when the console restarts. Set it when several
    console processes share one Redis."""
    session_ttl_s: int = Field(default=8 * 3600, ge=60, le=7 * 24 * 3600)
    """A session ends this long after sign-in (or earlier, when its token stops being valid)."""
    api_timeout_s: float = Field(default=10.0, gt=0)
    """Timeout of each call to the tokens, router and audit APIs."""

    @field_validator("session_key", mode="before")
    @classmethod
    def _fernet_key_or_none(cls, value: object) -> object:
        """Empty means unset; anything else must be a Fernet key (32 bytes, urlsafe base64)."""
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if raw in (None, ""):
            return None
        try:
            ok = len(base64.urlsafe_b64decode(str(raw).encode())) == 32
        except ValueError:
            ok = False
        if not ok:
            raise ValueError("session_key must be 32 bytes in urlsafe base64 (a Fernet key)")
        return value


def load() -> ConsoleSettings:
    return ConsoleSettings()
