"""The console's Prometheus metrics (its own registry, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

__all__ = ["ConsoleMetrics"]


class ConsoleMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.sign_ins = Counter(
            "alertyard_console_sign_ins_total",
            "Sign-in attempts by outcome (ok or the token error code).",
            ["outcome"],
            registry=self.registry,
        )
        self.sessions_ended = Counter(
            "alertyard_console_sessions_ended_total",
            "Sessions ended because their token stopped being valid, by reason code.",
            ["reason"],
            registry=self.registry,
        )
        self.api_errors = Counter(
            "alertyard_console_api_errors_total",
            "Error answers from the APIs the console calls, by service and status.",
            ["service", "status"],
            registry=self.registry,
        )
