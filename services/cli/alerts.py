"""``alertyard send`` / ``tail`` (straight to and from Kafka) and ``alertyard alerts get|list``
(routing decisions over the router's HTTP API)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from services.cli._client import (
    ApiClient,
    JsonOption,
    TokenOption,
    console,
    dump_model,
    fail,
    print_json,
    print_model,
    print_table,
)
from shared.alert import Alert, AlertStatus, Severity
from shared.durations import InvalidDurationError, parse_instant
from shared.formats.detect import Format
from shared.headers import AUTHORIZATION, RejectedHeaders, RoutedHeaders
from shared.settings import RouterSettings

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = ["register"]

alerts_app = typer.Typer(help="Look up what the router decided for alerts.", no_args_is_help=True)

_SEVERITY_STYLE = {"critical": "bold red", "error": "red", "warning": "yellow", "info": "cyan"}
_DECISION_COLUMNS = [
    "received (UTC)",
    "alert id",
    "severity",
    "status",
    "teams",
    "rules",
    "version",
]


def _settings(bootstrap: str | None) -> RouterSettings:
    settings = RouterSettings()
    if bootstrap:
        settings = settings.model_copy(update={"kafka_bootstrap_servers": bootstrap})
    return settings


def _labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--label takes key=value, got {pair!r}")
        labels[key] = value
    return labels


def _one_alert(
    raw_json: str | None,
    source: str | None,
    summary: str | None,
    severity: Severity,
    status: AlertStatus,
    service: str,
    environment: str,
    labels: list[str],
    dedup_key: str,
    alert_id: str | None,
) -> Alert:
    try:
        if raw_json is not None:
            return Alert.model_validate_json(raw_json)
        if not source or not summary:
            fail("give --source and --summary, or --json '{...}', or --file alerts.jsonl")
        fields: dict[str, Any] = {
            "source": source,
            "summary": summary,
            "severity": severity,
            "status": status,
            "service": service,
            "environment": environment,
            "labels": _labels(labels),
            "dedup_key": dedup_key,
        }
        if alert_id:
            fields["id"] = alert_id
        return Alert.model_validate(fields)
    except ValidationError as exc:
        fail(f"invalid alert: {_first_error(exc)}")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"]) or "<root>"
    return f"{where}: {error['msg']}"


async def _produce(
    settings: RouterSettings,
    topic: str,
    token: str,
    items: list[tuple[bytes | None, bytes]],
    progress: Progress | None,
    extra_headers: list[tuple[str, bytes]] | None = None,
) -> tuple[int, int]:
    from shared.kafka import make_producer  # aiokafka only when sending: faster CLI start-up

    producer = make_producer(settings.kafka_bootstrap_servers, request_timeout_ms=15_000)
    try:
        await asyncio.wait_for(producer.start(), timeout=15)
    except Exception as exc:
        fail(f"cannot reach Kafka at {settings.kafka_bootstrap_servers} ({type(exc).__name__})")
    headers = [(AUTHORIZATION, f"Bearer {token}".encode()), *(extra_headers or [])]
    sent = failed = 0
    task = progress.add_task("sending", total=len(items)) if progress else None
    try:
        for start in range(0, len(items), 1000):
            chunk = items[start : start + 1000]
            futures = [
                await producer.send(topic, value=value, key=key, headers=headers)
                for key, value in chunk
            ]
            for outcome in await asyncio.gather(*futures, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    failed += 1
                else:
                    sent += 1
            if progress is not None and task is not None:
                progress.advance(task, len(chunk))
    finally:
        await producer.stop()
    return sent, failed


def send(
    token: str | None = TokenOption,
    raw_json: Annotated[
        str | None, typer.Option("--json", help="One alert as a JSON object.")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", exists=True, dir_okay=False, help="Many alerts, one JSON object a line."
        ),
    ] = None,
    source: Annotated[str | None, typer.Option(help="Who sends it, e.g. prometheus.")] = None,
    summary: Annotated[str | None, typer.Option(help="One-line description.")] = None,
    severity: Annotated[Severity, typer.Option()] = Severity.warning,
    status: Annotated[AlertStatus, typer.Option()] = AlertStatus.firing,
    service: Annotated[str, typer.Option()] = "",
    environment: Annotated[str, typer.Option()] = "",
    label: Annotated[
        list[str] | None, typer.Option("--label", help="key=value; repeat for more.")
    ] = None,
    dedup_key: Annotated[str, typer.Option("--dedup-key")] = "",
    alert_id: Annotated[
        str | None, typer.Option("--id", help="Alert id (generated if omitted).")
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="Alerts topic (default: ALERTYARD_TOPIC_ALERTS).")
    ] = None,
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")] = None,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            help="Format of --file: native (one alert a line), alertmanager (a webhook body) "
            "or pagerduty (an Events v2 event); the router converts the last two.",
        ),
    ] = Format.native,
) -> None:
    """Publish alerts to the alerts topic with 'authorization: Bearer <token>'."""
    if not token:
        fail("an alerts:publish token is needed: --token or ALERTYARD_TOKEN")
    settings = _settings(bootstrap)
    target = topic or settings.topics.alerts
    if fmt is not Format.native:
        if file is None:
            fail(f"--format {fmt.value} needs --file")
        _send_foreign(settings, target, token, fmt, file)
        return
    if file is None:
        alert = _one_alert(
            raw_json,
            source,
            summary,
            severity,
            status,
            service,
            environment,
            label or [],
            dedup_key,
            alert_id,
        )
        sent, failed = asyncio.run(
            _produce(settings, target, token, [(alert.kafka_key(), alert.to_bytes())], None)
        )
        if failed:
            fail("Kafka did not acknowledge the alert")
        console.print(f"sent alert [bold]{alert.id}[/] to {target}")
        return
    items: list[tuple[bytes | None, bytes]] = []
    invalid: list[str] = []
    for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            parsed = Alert.model_validate_json(line)
        except ValidationError as exc:
            invalid.append(f"line {number}: {_first_error(exc)}")
            continue
        items.append((parsed.kafka_key(), parsed.to_bytes()))
    started = time.perf_counter()
    from rich.progress import (  # only for --file
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        sent, failed = asyncio.run(_produce(settings, target, token, items, progress))
    elapsed = time.perf_counter() - started
    for problem in invalid[:10]:
        console.print(f"[yellow]skipped[/] {problem}")
    rate = sent / elapsed if elapsed > 0 else 0.0
    console.print(
        f"sent {sent}, invalid {len(invalid)}, failed {failed} to {target} "
        f"in {elapsed:.2f}s ({rate:,.0f}/s)"
    )
    if failed or (invalid and not sent):
        raise typer.Exit(1)


def _send_foreign(
    settings: RouterSettings, topic: str, token: str, fmt: Format, file: Path
) -> None:
    """One record with the ``alertyard-format`` header, checked here with the converters the
    router uses, so a broken file fails before anything is published."""
    from shared.formats import alertmanager, pagerduty
    from shared.formats.detect import FORMAT_HEADER

    raw = file.read_bytes()
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        fail(f"{file} is not JSON: {exc}")
    table = settings.severity.table()
    if fmt is Format.alertmanager:
        results = alertmanager.convert(doc, mapping=settings.formats.alertmanager, severities=table)
        problems: list[object] = [r for r in results if not isinstance(r, Alert)]
        count = len(results)
    else:
        event = pagerduty.convert(doc, severities=table, new_dedup_key=lambda: "checked")
        problems = list(event.errors)
        count = 1
    for problem in problems[:10]:
        console.print(f"[yellow]invalid[/] {problem}")
    if problems or not count:
        fail(f"{file} holds {len(problems)} invalid alert(s) of {count}; nothing was sent")
    _, failed = asyncio.run(
        _produce(settings, topic, token, [(None, raw)], None, [(FORMAT_HEADER, fmt.value.encode())])
    )
    if failed:
        fail("Kafka did not acknowledge the record")
    console.print(f"sent {count} alert(s) as one {fmt.value} record to {topic}")


def _render(record: Any, as_json: bool) -> None:
    headers = list(record.headers or ())
    try:
        body: Any = json.loads(record.value)
    except (ValueError, TypeError):
        body = (record.value or b"").decode("utf-8", "replace")
    if any(k == "alertyard-reject-reason" for k, _ in headers):
        rejected = RejectedHeaders.from_kafka(headers)
        if as_json:
            print_json({"rejected": rejected.model_dump(), "value": body})
        else:
            console.print(f"[red]rejected[/] {rejected.reason}: {rejected.detail}")
        return
    routed = RoutedHeaders.from_kafka(headers) if headers else None
    if as_json:
        print_json({"alert": body, "routing": routed.model_dump() if routed else None})
        return
    alert = body if isinstance(body, dict) else {}
    severity = str(alert.get("severity", "?"))
    style = _SEVERITY_STYLE.get(severity, "white")
    rules = ",".join(routed.rule_ids) if routed else ""
    console.print(
        f"[dim]{alert.get('starts_at', '')}[/] [{style}]{severity:<8}[/] "
        f"{alert.get('status', ''):<8} [bold]{alert.get('summary', '')}[/] "
        f"[dim]id={alert.get('id', '')} service={alert.get('service', '')} rules={rules} "
        f"v{routed.ruleset_version if routed else '?'}[/]"
    )


async def _tail(
    settings: RouterSettings,
    topic: str,
    as_json: bool,
    from_beginning: bool,
    max_messages: int | None,
    idle_timeout: float | None,
) -> int:
    from shared.kafka import make_consumer  # aiokafka only when tailing

    consumer = make_consumer(
        settings.kafka_bootstrap_servers,
        topic,
        group_id=None,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    seen = 0
    last = time.monotonic()
    try:
        while max_messages is None or seen < max_messages:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    _render(record, as_json)
                    seen += 1
                    last = time.monotonic()
            if idle_timeout is not None and time.monotonic() - last > idle_timeout:
                break
    finally:
        await consumer.stop()
    return seen


def tail(
    team: Annotated[str | None, typer.Option(help="Follow this team's topic.")] = None,
    unrouted: Annotated[
        bool, typer.Option("--unrouted", help="Follow the unrouted topic.")
    ] = False,
    rejected: Annotated[
        bool, typer.Option("--rejected", help="Follow the rejected topic.")
    ] = False,
    as_json: bool = JsonOption,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest message.")
    ] = False,
    max_messages: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after N messages.")
    ] = None,
    idle_timeout: Annotated[
        float | None,
        typer.Option("--idle-timeout", min=0.1, help="Stop after this many idle seconds."),
    ] = None,
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap servers.")] = None,
) -> None:
    """Follow a team topic (or the unrouted / rejected topic) and print each alert."""
    settings = _settings(bootstrap)
    if sum((team is not None, unrouted, rejected)) != 1:
        fail("choose one of --team T, --unrouted or --rejected")
    topic = (
        settings.topics.team_topic(team)
        if team
        else settings.topics.unrouted
        if unrouted
        else settings.topics.rejected
    )
    if not as_json:
        console.print(f"[dim]following {topic} (Ctrl-C to stop)[/]")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_tail(settings, topic, as_json, from_beginning, max_messages, idle_timeout))


@alerts_app.command("get")
def get_alert(
    alert_id: str = typer.Argument(..., help="The alert id."),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Show the routing decision for one alert."""
    from services.router.decisions import Decision  # the API's own response model

    decision = ApiClient("router", token).typed(Decision, "GET", f"/v1/alerts/{alert_id}")
    if as_json:
        print_model(decision)
        return
    for key, value in dump_model(decision).items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        console.print(f"[bold]{key:>16}[/] {shown}")


@alerts_app.command("list")
def list_alerts(
    team: str | None = typer.Option(None, help="Only this team's alerts."),
    status: str | None = typer.Option(None, help="firing | resolved"),
    outcome: str | None = typer.Option(None, help="routed | unrouted"),
    since: str | None = typer.Option(
        None, help="Received at or after: ISO time or a duration ago (2h, 7d)."
    ),
    limit: int = typer.Option(50, min=1, max=50),
    cursor: str | None = typer.Option(None, help="From a previous page's next_cursor."),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """List routing decisions, newest first (one page; --cursor for the next)."""
    from services.router.decisions import DecisionPage  # the API's own response model

    if since is not None:
        try:
            since = parse_instant(since).isoformat()
        except InvalidDurationError as exc:
            raise typer.BadParameter(str(exc)) from None
    params = {
        k: v
        for k, v in {
            "team": team,
            "status": status,
            "outcome": outcome,
            "since": since,
            "limit": limit,
            "cursor": cursor,
        }.items()
        if v is not None
    }
    page = ApiClient("router", token).typed(DecisionPage, "GET", "/v1/alerts", params=params)
    if as_json:
        print_model(page)
        return
    rows = [
        {
            "received (UTC)": f"{item.received_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}",
            "alert id": item.alert_id,
            "severity": item.severity,
            "status": item.alert_status,
            "teams": ",".join(item.teams) or "(unrouted)",
            "rules": ",".join(item.rule_ids),
            "version": item.ruleset_version,
        }
        for item in page.items
    ]
    print_table(rows, _DECISION_COLUMNS, title="routing decisions")
    if page.next_cursor:
        console.print(f"next page: --cursor {page.next_cursor}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add ``send``, ``tail`` and the ``alerts`` group to ``app``."""
    app.command()(send)
    app.command()(tail)
    app.add_typer(alerts_app, name="alerts")
