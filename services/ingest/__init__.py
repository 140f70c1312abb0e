"""The ingest service: Alertmanager / Grafana webhooks, PagerDuty Events v2 and native alerts
over HTTP, converted to the alert contract and produced to the alerts topic with the caller's
token. Stateless: scale it by adding processes."""
