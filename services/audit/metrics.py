"""Prometheus metrics of the audit service (process-wide, on the default registry)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "APPENDED",
    "APPEND_SECONDS",
    "CHECKPOINTS",
    "DUPLICATES",
    "GAPS",
    "HEAD_SEQ",
    "MISSING",
    "QUARANTINED",
]

APPENDED = Counter("alertyard_audit_records_appended", "Events appended to the chain")
DUPLICATES = Counter(
    "alertyard_audit_duplicates", "Redelivered events skipped because their id is already logged"
)
QUARANTINED = Counter(
    "alertyard_audit_quarantined", "Malformed events kept out of the chain", ["reason"]
)
CHECKPOINTS = Counter("alertyard_audit_checkpoints", "Signed checkpoints written")
HEAD_SEQ = Gauge("alertyard_audit_head_seq", "Seq of the newest durable record")
GAPS = Counter(
    "alertyard_audit_sequence_gaps", "Gaps found in a source's event sequence", ["source"]
)
MISSING = Gauge(
    "alertyard_audit_missing_events",
    "Sequence numbers of a source still missing (open gaps)",
    ["source"],
)
APPEND_SECONDS = Histogram(
    "alertyard_audit_append_seconds",
    "Time to append and fsync one consumed batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
