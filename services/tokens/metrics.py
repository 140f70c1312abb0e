"""Prometheus metrics of the token service, on a registry of its own (one per instance).

Same shape as :class:`services.router.metrics.RouterMetrics`: one class per service, one
attribute per metric, names ``alertyard_<service>_<what>``, served on ``/metrics``. Labels hold
reason codes only: never a token, a token id or a user.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from shared.outbox import OutboxMetrics

__all__ = ["TokensMetrics"]


class TokensMetrics:
    """Also the validator's :class:`shared.tokens.ValidatorMetrics` (authentications, cache)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.authentications = Counter(
            "alertyard_tokens_authentications",
            "Full token checks by outcome: ok or the rejection code (token_expired, ...)",
            ["outcome"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "alertyard_tokens_cache_lookups",
            "Validator cache lookups by result (hit or miss)",
            ["result"],
            registry=r,
        )
        # Resolved once: the cache-hit path is measured in microseconds.
        self._cache_hits = self.cache_lookups.labels(result="hit")
        self._cache_misses = self.cache_lookups.labels(result="miss")
        # The relay's own metrics (alertyard_outbox_*{source}), on this registry; the expiry
        # sweep samples the backlog too, so it is current even while no relay holds the lease.
        self.outbox = OutboxMetrics(r)
        self.expiry_sweeps = Counter(
            "alertyard_tokens_expiry_sweeps",
            "Expiry sweeps by outcome (ok or failed)",
            ["outcome"],
            registry=r,
        )
        self.tokens_expired = Counter(
            "alertyard_tokens_expired", "Tokens marked expired by a sweep", registry=r
        )

    # -- shared.tokens.ValidatorMetrics --------------------------------------------------

    def authentication(self, outcome: str) -> None:
        self.authentications.labels(outcome=outcome).inc()

    def cache_lookup(self, *, hit: bool) -> None:
        (self._cache_hits if hit else self._cache_misses).inc()
