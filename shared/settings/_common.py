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
    """Routing decisions, when ``ALERTYARD_ROUTER_DECISIONS_VIA_TOPIC`` is on."""
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
    outbox_request_timeout_s: float = Field(
        default=RELAY_REQUEST_TIMEOUT_S, gt=0, validation_alias="ALERTYARD_OUTBOX_REQUEST_TIMEOUT_S"
    )
    """The outbox relay producer's request timeout; its lease lasts twice that plus 5 s, which
    is also how long a crashed relay's successor waits (shared/outbox.py)."""
