"""``alertyard ingest sample``: post a sample alert to the ingest service the way a source
would, then show where the router sent it."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from services.cli._client import ApiClient, JsonOption, TokenOption, console, fail, print_json
from shared.formats.detect import Format

__all__ = ["register", "sample_body"]

ingest_app = typer.Typer(help="Send alerts through the ingest service.", no_args_is_help=True)

_PATHS = {
    Format.alertmanager: "/v1/ingest/alertmanager",
    Format.pagerduty: "/v2/enqueue",
    Format.native: "/v1/ingest/alerts",
}


def sample_body(fmt: Format, token: str, service: str, severity: str) -> dict[str, Any]:
    """A sample in ``fmt`` as its source would send it (each call a new alert)."""
    tag = uuid.uuid4().hex[:12]
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    if fmt is Format.alertmanager:
        return {
            "version": "4",
            "groupKey": '{}:{alertname="AlertyardSample"}',
            "status": "firing",
            "receiver": "alertyard",
            "externalURL": "http://alertmanager.example:9093",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": "AlertyardSample",
                        "service": service,
                        "severity": severity,
                        "env": "prod",
                    },
                    "annotations": {"summary": f"sample alert from alertyard ({tag})"},
                    "startsAt": now,
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus.example:9090/graph",
                    "fingerprint": tag,
                }
            ],
        }
    if fmt is Format.pagerduty:
        return {
            "routing_key": token,
            "event_action": "trigger",
            "dedup_key": tag,
            "payload": {
                "summary": f"sample alert from alertyard ({tag})",
                "source": "alertyard-cli",
                "severity": severity,
                "component": service,
            },
        }
    return {
        "source": "alertyard-cli",
        "summary": f"sample alert from alertyard ({tag})",
        "service": service,
        "severity": severity,
        "dedup_key": tag,
    }


@ingest_app.command("sample")
def sample(
    token: str | None = TokenOption,
    fmt: Annotated[Format, typer.Option("--format", help="Which source to imitate.")] = (
        Format.alertmanager
    ),
    service: Annotated[str, typer.Option(help="The sample's service.")] = "checkout",
    severity: Annotated[str, typer.Option(help="As the source says it, e.g. high.")] = "high",
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for the routing.")] = 15.0,
    as_json: bool = JsonOption,
) -> None:
    """Post a sample alert to the ingest service, then show the router's decision.

    The token needs alerts:publish (and alerts:read to show the decision).
    """
    if not token:
        fail("a token is needed: --token or ALERTYARD_TOKEN")
    ingest = ApiClient("ingest", None if fmt is Format.pagerduty else token)
    body = sample_body(fmt, token, service, severity)
    answer = ingest.post(_PATHS[fmt], json=body)
    if fmt is Format.pagerduty:
        # PagerDuty answers with the dedup key only: the router is asked by alert id below.
        console.print(f"ingest: {answer['message']} (dedup_key {answer['dedup_key']})")
        if as_json:
            print_json(answer)
        return
    alert_ids: list[str] = answer["alert_ids"]
    if not as_json:
        console.print(f"ingest accepted {answer['accepted']} alert(s) into {answer['topic']}")
    router = ApiClient("router", token)
    deadline = time.monotonic() + wait
    decisions: dict[str, Any] = {}
    while len(decisions) < len(alert_ids) and time.monotonic() < deadline:
        for alert_id in alert_ids:
            if alert_id not in decisions and (found := router.find(f"/v1/alerts/{alert_id}")):
                decisions[alert_id] = found
        if len(decisions) < len(alert_ids):
            time.sleep(0.25)  # a CLI waiting on another process, not a test
    if as_json:
        print_json({"ingest": answer, "decisions": decisions})
        return
    for alert_id in alert_ids:
        decision = decisions.get(alert_id)
        if decision is None:
            fail(f"the router has no decision for {alert_id} after {wait:.0f}s; is it running?")
        teams = ", ".join(decision.get("teams") or []) or "(unrouted)"
        console.print(
            f"alert [bold]{alert_id}[/] -> {decision.get('outcome')}: {teams} "
            f"[dim]severity={decision.get('severity')} rules="
            f"{','.join(decision.get('rule_ids') or [])}[/]"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(ingest_app, name="ingest")
