"""Settings every service shares: where Kafka and Redis are, topic names, logging."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.outbox import RELAY_REQUEST_TIMEOUT_S

__all__ = ["CommonSettings", "TopicSettings"]


class TopicSettings(BaseSettings):
    """Topic names. Defaults follow the brief; every name is configurable."""

    model_config = SettingsConfigDict(env_prefix="ALERTYARD_TOPIC_", extra="ignore")

    alerts: str = "alerts"
    team_prefix: str = "alerts.team."
    """A team's topic is ``team_prefix + <team>``."""
    unrouted: str = "alerts.unrouted"
    rejected: str = "alerts.rejected"
    audit: str = "audit.events"
    decisions: str = "alerts.decisions"
    """Routing decisions (unless ``ALERTYARD_ROUTER_DECISIONS_VIA_TOPIC=false``)."""
    partitions: int = Field(default=6, ge=1)
    """Partitions for topics the project creates."""
    replication_factor: int = Field(default=1, ge=1)

    def team_topic(self, team: str) -> str:
        return self.team_prefix + team


class CommonSettings(BaseSettings):
    """Base of every service's settings. Field aliases ignore the subclass's env prefix."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:9092", validation_alias="ALERTYARD_KAFKA_BOOTSTRAP_SERVERS"
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", validation_alias="ALERTYARD_REDIS_URL"
    )
    log_level: str = Field(default="info", validation_alias="ALERTYARD_LOG_LEVEL")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", validation_alias="ALERTYARD_LOG_FORMAT"
    )
    topics: TopicSettings = Field(default_factory=TopicSettings)
    auth_fail_limit: int = Field(default=20, ge=1, validation_alias="ALERTYARD_AUTH_FAIL_LIMIT")
    """Failed authentications allowed per client address per moving window before 429; the
    count is kept in Redis and shared by every process of every service."""
    auth_fail_window_s: float = Field(
        default=60.0, gt=0, validation_alias="ALERTYARD_AUTH_FAIL_WINDOW_S"
    )
    trusted_proxy_header: str | None = Field(
        default=None, validation_alias="ALERTYARD_TRUSTED_PROXY_HEADER"
    )
    """Header a trusted reverse proxy sets to the client's address (``X-Forwarded-For``,
    ``X-Real-IP``); unset, the TCP peer is the client. Read only from ``trusted_proxies``."""
    trusted_proxies: list[str] = Field(
        default=["127.0.0.1/32", "::1/128"], validation_alias="ALERTYARD_TRUSTED_PROXIES"
    )
    """Networks (CIDR) of the proxies whose ``trusted_proxy_header`` is believed (JSON list)."""
    http_fd: int | None = Field(default=None, validation_alias="ALERTYARD_HTTP_FD")
    """A listening socket inherited from the parent process (tests, socket activation); when
    set, the service serves HTTP on it instead of binding ``http_host``/``http_port``."""
    outbox_request_timeout_s: float = Field(
        default=RELAY_REQUEST_TIMEOUT_S, gt=0, validation_alias="ALERTYARD_OUTBOX_REQUEST_TIMEOUT_S"
    )
    """The outbox relay producer's request timeout; its lease lasts twice that plus 5 s, which
    is also how long a crashed relay's successor waits (shared/outbox.py)."""
