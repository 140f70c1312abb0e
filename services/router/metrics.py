"""Prometheus metrics of the router, on a registry of its own (one per router instance).

Labels hold team names and reason codes only: never a token, never an alert id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["RouterMetrics"]


class RouterMetrics:
    """Also the validator's :class:`shared.tokens.ValidatorMetrics` (authentications, cache),
    with the same names as the token service's under ``alertyard_router_``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.alerts_in = Counter(
            "alertyard_router_alerts_in", "Records consumed from the alerts topic", registry=r
        )
        self.routed = Counter(
            "alertyard_router_alerts_routed",
            "Alert copies published to team topics",
            ["team"],
            registry=r,
        )
        self.unrouted = Counter(
            "alertyard_router_alerts_unrouted", "Alerts that matched no rule", registry=r
        )
        self.rejected = Counter(
            "alertyard_router_alerts_rejected",
            "Records sent to the rejected topic",
            ["reason"],
            registry=r,
        )
        self.batch_seconds = Histogram(
            "alertyard_router_batch_seconds",
            "Time from a batch's arrival to its offsets being committed",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.batch_size = Histogram(
            "alertyard_router_batch_records",
            "Records per batch",
            buckets=(1, 5, 10, 50, 100, 250, 500, 1000, 2500),
            registry=r,
        )
        self.lag = Gauge(
            "alertyard_router_consumer_lag",
            "Records behind the high watermark, summed over assigned partitions",
            registry=r,
        )
        self.ruleset_version = Gauge(
            "alertyard_router_ruleset_version", "Version of the ruleset in use", registry=r
        )
        self.publish_retries = Counter(
            "alertyard_router_publish_retries", "Publishes sent again after a failure", registry=r
        )
        self.decisions_buffered = Gauge(
            "alertyard_router_decisions_buffered",
            "Decisions waiting for Redis (lookups lag behind while non-zero)",
            registry=r,
        )
        self.assigned_partitions = Gauge(
            "alertyard_router_assigned_partitions", "Partitions assigned to this router", registry=r
        )
        self.authentications = Counter(
            "alertyard_router_authentications",
            "Full token checks by outcome: ok or the rejection code (token_expired, ...)",
            ["outcome"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "alertyard_router_cache_lookups",
            "Validator cache lookups by result (hit or miss)",
            ["result"],
            registry=r,
        )
        # Resolved once: the cache-hit path is measured in microseconds.
        self._cache_hits = self.cache_lookups.labels(result="hit")
        self._cache_misses = self.cache_lookups.labels(result="miss")

    # -- shared.tokens.ValidatorMetrics --------------------------------------------------

    def authentication(self, outcome: str) -> None:
        self.authentications.labels(outcome=outcome).inc()

    def cache_lookup(self, *, hit: bool) -> None:
        (self._cache_hits if hit else self._cache_misses).inc()
