"""Prometheus metrics of the ingest service (process-wide, on the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = ["ALERTS_PRODUCED", "PRODUCE_SECONDS", "REFUSED", "REQUESTS"]

REQUESTS = Counter(
    "alertyard_ingest_requests",
    "Ingest requests by endpoint and HTTP status",
    ["endpoint", "status"],
)
ALERTS_PRODUCED = Counter(
    "alertyard_ingest_alerts_produced", "Alerts acknowledged by Kafka", ["endpoint"]
)
REFUSED = Counter(
    "alertyard_ingest_refused",
    "Requests refused, by endpoint and reason code",
    ["endpoint", "reason"],
)
PRODUCE_SECONDS = Histogram(
    "alertyard_ingest_produce_seconds",
    "Time from handing a request's records to the producer until every ack",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)
