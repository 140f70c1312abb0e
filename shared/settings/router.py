"""Router service settings (``ALERTYARD_ROUTER_*``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from shared.durations import DurationSeconds, WholeSeconds
from shared.settings._common import CommonSettings
from shared.settings.formats import FormatSettings
from shared.settings.severity import SeveritySettings

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
    """Longest wait for a batch to fill before routing what has arrived."""
    decision_retention_s: WholeSeconds = Field(default=7 * 24 * 3600, ge=60)
    """How long alert lookups (``GET /v1/alerts/{id}``) keep a routing decision."""
    decisions_via_topic: bool = True
    """Publish decisions to ``ALERTYARD_TOPIC_DECISIONS`` before committing and index them into
    Redis from there (no lookup lost on a crash or a long Redis outage; services/router/
    decision_log.py). Off (opt-out): the in-memory writer below, which loses the decisions it
    still holds on a crash and the oldest past its buffer during a long Redis outage."""
    decision_indexer: Literal["process", "inline"] = "process"
    """Where the router's decision indexer runs (decisions topic only): ``process``, a child
    process (``python -m services.router.indexer``) that ends with the router and is restarted
    if it dies; ``inline``, on the router's own event loop (which costs it routing throughput).
    Deployments that run indexers on their own start that module themselves."""
    decision_index_linger_ms: int = Field(default=50, ge=0, le=5_000)
    """Longest the decision indexer gathers decisions for a small Redis write: a write costs
    Redis a script call per decision shard whatever it holds, so at low rates lookups lag by up
    to this much more for a fraction of the indexer's and Redis's CPU (0: write what arrived)."""
    decision_buffer_max: int = Field(default=100_000, ge=1)
    """Opt-out path only: decisions held in memory while Redis is unreachable; the oldest go
    first past this."""
    team_topic_partitions: int | None = Field(default=None, ge=1)
    """Partitions of team topics created on demand (default: ``ALERTYARD_TOPIC_PARTITIONS``)."""
    team_topic_replication_factor: int | None = Field(default=None, ge=1)
    """Replication of team topics created on demand (default: the common topic setting)."""
    provision_teams: list[str] = Field(default_factory=list)
    """Teams whose topics are created at start-up, before any alert needs them."""
    publish_retry_max_backoff_s: DurationSeconds = Field(default=5.0, gt=0)
    """Ceiling of the exponential backoff between retries of failed publishes."""
    pipeline_depth: int = Field(default=4, ge=1, le=16)
    """Full batches' worth of records (``x batch_max_records``) handed to the producer whose
    acks are still awaited (overlaps I/O and CPU). Records, not batches: at a low rate a fetch
    returns a few records, and those batches do not wait for one another's acks."""
    fetch_max_wait_ms: int = Field(default=20, ge=1)
    """Longest a fetch waits at the broker; aiokafka re-fetches a drained partition only after
    the outstanding request returns, so a long wait (default 500) shows up as latency."""
    producer_linger_ms: float = Field(default=0.5, ge=0)
    """How long librdkafka gathers records into one produce request. Half a millisecond lets the
    copies of a batch, handed over in one loop, share requests (at 0 the first records leave
    alone: under a backlog the broker's CPU per alert doubled and the router routed ~25% fewer
    alerts a second) while adding next to nothing to latency (p99 at 2,000/s within noise of 0;
    5 ms, librdkafka's default, added ~8 ms)."""
    group_protocol: Literal["classic", "consumer"] = "classic"
    """``classic``: the cooperative-sticky assignor (incremental rebalances); ``consumer``: the
    KIP-848 protocol of Kafka 4.x brokers (assignment on the broker, also incremental)."""
    exactly_once: bool = False
    """Copies, unrouted, rejected and decision records and the consumed offsets in one Kafka
    transaction per settled group of batches; team consumers reading ``read_committed`` see
    each alert once, across crashes too (docs/delivery.md)."""
    transactional_id: str | None = None
    """The producer's ``transactional.id`` with ``exactly_once`` (default
    ``<group id>-<hostname>``). Stable per instance across restarts, distinct between
    instances: a restart fences its predecessor; two live routers with one id fence each other."""
    shutdown_drain_s: DurationSeconds = Field(default=30.0, gt=0)
    """How long shutdown waits for the batch in hand to be published and committed."""
    severity: SeveritySettings = Field(default_factory=SeveritySettings)
    """The severity table (``ALERTYARD_SEVERITY_*``): ``high`` -> error and friends."""
    formats: FormatSettings = Field(default_factory=FormatSettings)
    """Field mappings for webhook JSON on the alerts topic (``ALERTYARD_FORMAT_*``)."""
    topic_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    """Topic -> the token its records are published with when they carry no authorization
    header, for sources that cannot set record headers (Alertmanager's Kafka receiver). The
    router also consumes these topics. Example: ``{"alertmanager": "ayg_..."}``."""


def load() -> RouterSettings:
    return RouterSettings()
