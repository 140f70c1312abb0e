"""``alertyard audit``: verify a log (offline, with only the public key), query and gaps (HTTP)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.audit.errors import SigningKeyError
from services.audit.signing import PUBLIC_KEY_FILE, load_public_key
from services.cli._client import (
    ApiClient,
    JsonOption,
    TokenOption,
    console,
    err_console,
    fail,
    print_json,
    print_table,
)
from shared.durations import InvalidDurationError, parse_instant
from shared.settings.audit import AuditSettings

if TYPE_CHECKING:
    from services.audit.verify import VerifyReport

__all__ = ["parse_time", "register"]

audit_app = typer.Typer(
    help="The tamper-evident audit log: verify it, query it, list lost events.",
    no_args_is_help=True,
)

_COLUMNS = ["seq", "time", "type", "actor", "actor_token", "subject"]


def parse_time(text: str) -> str:
    """An ISO 8601 instant, or a duration ago (``15m``, ``2h``, ``7d``), as ISO 8601 (UTC)."""
    try:
        return parse_instant(text).isoformat()
    except InvalidDurationError as exc:
        raise typer.BadParameter(str(exc)) from None


@audit_app.command("verify")
def verify(
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            help="Log directory (a live log or an offline copy). Default: ALERTYARD_AUDIT_LOG_DIR.",
            show_default=False,
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key",
            help=f"Ed25519 public key (PEM). Default: <dir>/{PUBLIC_KEY_FILE}; an auditor "
            "should pass the copy they were given out of band.",
            show_default=False,
        ),
    ] = None,
    as_json: bool = JsonOption,
) -> None:
    """Recompute the hash chain and check every checkpoint signature. Exit 1 on any problem."""
    log_dir = directory or AuditSettings().log_dir
    if not log_dir.is_dir():
        fail(f"{log_dir} is not a directory")
    try:
        key = load_public_key(public_key or log_dir / PUBLIC_KEY_FILE)
    except SigningKeyError as exc:
        fail(exc.detail)
    report = _verify_with_progress(log_dir, key, show=not as_json)
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        _print_report(log_dir, report)
    if not report.ok:
        raise typer.Exit(1)


def _verify_with_progress(log_dir: Path, key: Any, *, show: bool) -> VerifyReport:
    from rich.progress import (  # imported on use: keeps every other command's start-up short
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from services.audit.verify import verify_log

    with Progress(
        TextColumn("verifying"),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not show or not err_console.is_terminal,
    ) as progress:
        task = progress.add_task("verify", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return verify_log(log_dir, key, progress=advance)


def _print_report(log_dir: Path, report: VerifyReport) -> None:
    rate = report.records / report.seconds if report.seconds > 0 else 0.0
    console.print(
        f"{log_dir}: {report.records} records in {report.segments} segments, "
        f"{report.checkpoints} signed checkpoints (key {report.key_id}), "
        f"verified in {report.seconds:.2f}s ({rate:,.0f} records/s)",
        highlight=False,
    )
    if report.ok:
        console.print(
            f"[bold green]OK[/] head seq {report.head_seq}, hash {report.head_hash}; "
            f"signed up to seq {report.last_checkpoint_seq}"
            + (
                f", {report.unsigned_tail} newer records not yet signed"
                if report.unsigned_tail
                else ""
            ),
            highlight=False,
        )
        return
    console.print(f"[bold red]FAILED[/] first bad seq: {report.first_bad_seq}", highlight=False)
    for problem in report.problems:
        console.print(f"  - [{problem.kind}] {problem.message}", highlight=False)


@audit_app.command("query")
def query(
    actor: str | None = typer.Option(None, "--actor", help="Acting user id."),
    token_id: str | None = typer.Option(
        None, "--token-id", help="Token id used for, or subject of, the change."
    ),
    event_type: str | None = typer.Option(None, "--type", help="e.g. token.created"),
    subject: str | None = typer.Option(None, "--subject", help="e.g. token/<id>"),
    since: str | None = typer.Option(None, "--since", help="ISO 8601 or a duration ago (2h)."),
    until: str | None = typer.Option(None, "--until", help="ISO 8601 or a duration ago."),
    limit: int = typer.Option(100, "--limit", min=1, help="Most records to print."),
    cursor: str | None = typer.Option(None, "--cursor", help="Continue after a previous page."),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Audit records matching every given filter, oldest first (needs audit:read)."""
    params: dict[str, Any] = {
        "actor": actor,
        "token_id": token_id,
        "type": event_type,
        "subject": subject,
        "since": parse_time(since) if since else None,
        "until": parse_time(until) if until else None,
        "cursor": cursor,
    }
    params = {k: v for k, v in params.items() if v is not None}
    client = ApiClient("audit", token)
    records: list[dict[str, Any]] = []
    next_cursor: str | None = cursor
    while len(records) < limit:
        page = client.get(
            "/v1/audit/events", params={**params, "limit": min(limit - len(records), 1000)}
        )
        records.extend(page["records"])
        next_cursor = page["next_cursor"]
        if next_cursor is None:
            break
        params["cursor"] = next_cursor
    if as_json:
        print_json({"records": records, "next_cursor": next_cursor})
        return
    rows = [
        {
            "seq": r["seq"],
            "time": r["event"]["time"],
            "type": r["event"]["type"],
            "actor": r["event"]["actor"].get("user_id") or r["event"]["actor"].get("kind"),
            "actor_token": r["event"]["actor"].get("token_id"),
            "subject": r["event"]["subject"],
        }
        for r in records
    ]
    print_table(rows, _COLUMNS, title=f"{len(rows)} audit records")
    if next_cursor is not None:
        err_console.print(f"more: --cursor {next_cursor}")


@audit_app.command("gaps")
def gaps(token: str | None = TokenOption, as_json: bool = JsonOption) -> None:
    """Per-source sequence numbers that never arrived (lost events). Exit 1 if any."""
    body = ApiClient("audit", token).get("/v1/audit/gaps")
    if as_json:
        print_json(body)
    else:
        rows = [
            {
                "source": s["source"],
                "last_sequence": s["last_sequence"],
                "missing": s["missing_count"],
                "ranges": ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in s["missing"]),
                "repeated": s["repeated"],
            }
            for s in body["sources"]
        ]
        print_table(rows, ["source", "last_sequence", "missing", "ranges", "repeated"])
    if body["missing_total"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``audit`` group to ``app``."""
    app.add_typer(audit_app, name="audit")
