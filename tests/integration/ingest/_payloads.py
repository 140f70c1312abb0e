"""Webhook bodies as Alertmanager 0.35 and Grafana send them."""

from __future__ import annotations

from typing import Any


def am_alert(
    name: str = "HighLatency",
    *,
    status: str = "firing",
    severity: str = "high",
    service: str = "checkout",
    fingerprint: str = "c0ffee0123456789",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": name, "severity": severity, "service": service, **labels},
        "annotations": {"summary": f"{name} on {service}", "runbook": "https://runbooks/x"},
        "startsAt": "2026-12-01T09:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-12-01T09:05:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def am_webhook(*alerts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "version": "4",
        "groupKey": '{}:{alertname="HighLatency"}',
        "truncatedAlerts": 0,
        "status": alerts[0]["status"] if alerts else "firing",
        "receiver": "alertyard",
        "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "notification_reason": "new_alerts",  # 0.32+: ignored
        "routeLabels": {},  # 0.34+: ignored
        "alerts": list(alerts),
        **extra,
    }
