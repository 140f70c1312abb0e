"""``alertyard rules`` commands: list, get, apply (with diff), delete, explain, test, lint,
and ``rules sources`` (which teams own which alert sources).

``explain``, ``test`` and ``lint`` also work offline on a rules file (``--rules FILE`` /
``lint FILE``), so a ruleset can be checked in CI before it is applied.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from services.cli._client import (
    ApiClient,
    JsonOption,
    TokenOption,
    console,
    fail,
    print_json,
    print_model,
    print_table,
)
from services.rules.backtest import (
    BacktestRange,
    BacktestReport,
    ProgressCallback,
    parse_instant,
    run_backtest,
)
from services.rules.control.schemas import (
    CaseReport,
    ChangeReport,
    Deleted,
    Explanation,
    LintFinding,
    LintReport,
    RuleEnvelope,
    RulesetRead,
    SourceChange,
    SourcesRead,
)
from services.rules.engine.documents import (
    dump_rules_yaml,
    load_cases,
    load_document,
    load_rules,
    parse_alert,
)
from services.rules.engine.explain import explain, run_cases, source_of
from services.rules.engine.lint import lint
from services.rules.engine.model import Ruleset, parse_ruleset
from shared.errors import AlertyardError
from shared.settings.router import RouterSettings

__all__ = ["register"]

rules_app = typer.Typer(
    help="Team routing rules: apply, explain, test, lint, backtest.", no_args_is_help=True
)

FileOption = typer.Option(None, "--file", "-f", help="Path to the file ('-' for stdin).")
RulesFileOption = typer.Option(
    None, "--rules", help="Evaluate against this rules file locally instead of the server."
)
ExpectedOption = typer.Option(
    None, "--expected-version", help="Refuse (409) unless the stored ruleset is at this version."
)


def _read(path: str) -> str:
    if path == "-":
        return typer.get_text_stream("stdin").read()
    file = Path(path)
    if not file.is_file():
        fail(f"no such file: {path}")
    return file.read_text(encoding="utf-8")


def _pick(positional: str | None, option: str | None, what: str) -> str:
    chosen = option or positional
    if not chosen:
        fail(f"give the {what} as an argument or with -f/--file")
    return chosen


def _local_rules(path: str) -> Ruleset:
    """A ruleset parsed locally; prints the rule, condition and reason when invalid."""

    try:
        return load_rules(_read(path))
    except AlertyardError as exc:
        problems = exc.context.get("problems", [])
        for problem in problems[1:]:
            where = f"rule {problem['rule']!r}"
            if problem.get("condition"):
                where += f", {problem['condition']}"
            console.print(f"  {where}: {problem['reason']}", highlight=False)
        fail(f"{path}: {exc.detail} [{exc.code}]")


@rules_app.command("list")
def list_rules(token: str | None = TokenOption, as_json: bool = JsonOption) -> None:
    """List the stored rules in evaluation order."""
    body = ApiClient("router", token).typed(RulesetRead, "GET", "/v1/rules")
    if as_json:
        print_model(body, exclude_none=True)
        return
    rows = [
        {
            "position": rule.position,
            "name": rule.name,
            "owner_team": rule.owner_team,
            "id": rule.id,
            "destinations": ", ".join(rule.destinations),
            "groups": len(rule.condition_groups),
            "flags": " ".join(
                flag
                for flag, on in (
                    ("continue", rule.continue_),
                    ("fallback", rule.fallback),
                    ("disabled", not rule.enabled),
                )
                if on
            ),
        }
        for rule in body.rules
    ]
    columns = ["position", "name", "owner_team", "destinations", "groups", "flags", "id"]
    print_table(rows, columns, title=f"ruleset version {body.version}")


@rules_app.command("get")
def get_rules(
    ref: str | None = typer.Argument(None, help="Rule id or name; all rules as YAML if omitted."),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one rule, or the whole ruleset as a rules file (ready for ``apply``)."""
    client = ApiClient("router", token)
    if ref is None:
        ruleset = client.typed(RulesetRead, "GET", "/v1/rules")
        if as_json:
            print_model(ruleset, exclude_none=True)
            return

        console.print(f"# ruleset version {ruleset.version}", highlight=False)
        typer.echo(dump_rules_yaml(_as_ruleset(ruleset)), nl=False)
        return
    one = client.typed(RuleEnvelope, "GET", f"/v1/rules/{ref}")
    if as_json:
        print_model(one, exclude_none=True)
    else:
        typer.echo(yaml.safe_dump(one.rule.dump(), sort_keys=False), nl=False)


def _as_ruleset(read: RulesetRead) -> Ruleset:
    """The engine's ruleset from the API's answer (same rules, same version)."""
    return parse_ruleset(read.model_dump(mode="json", by_alias=True), version=read.version)


rules_app.command("show", hidden=True, help="Alias of get.")(get_rules)


@rules_app.command("apply")
def apply_rules(
    path: str | None = typer.Argument(None, help="Rules file (YAML or JSON)."),
    file: str | None = FileOption,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only show the diff."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking."),
    expected_version: int | None = ExpectedOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Replace the stored ruleset with a file, showing the diff first."""
    source = _pick(path, file, "rules file")
    text = _read(source)
    _local_rules(source)  # refuse locally first, with every problem listed
    client = ApiClient("router", token)
    headers = {"content-type": "application/yaml"}
    params: dict[str, Any] = {"dry_run": "true"}
    if expected_version is not None:
        params["expected_version"] = expected_version
    apply = "/v1/rules/apply"
    plan = client.typed(ChangeReport, "POST", apply, content=text, headers=headers, params=params)
    if dry_run or plan.diff_text == ["no changes"]:
        _print_change(plan, as_json)
        return
    if not as_json:
        _print_diff(plan.diff_text)
    if not yes and not typer.confirm(f"apply as version {plan.version + 1}?"):
        raise typer.Exit(1)
    # Pin the version the diff was computed on: a concurrent change turns into a 409.
    params = {"expected_version": plan.version}
    result = client.typed(ChangeReport, "POST", apply, content=text, headers=headers, params=params)
    _print_change(result, as_json, diff_shown=True)


def _print_diff(lines: list[str]) -> None:
    colours = {"+": "green", "-": "red", "~": "yellow", ">": "cyan", "@": "magenta"}
    for line in lines:
        colour = colours.get(line[:1])
        console.print(f"[{colour}]{line}[/]" if colour else line, highlight=False)


def _print_change(body: ChangeReport, as_json: bool, *, diff_shown: bool = False) -> None:
    if as_json:
        print_model(body, exclude_none=True)
        return
    if not diff_shown:
        _print_diff(body.diff_text)
    if body.applied:
        console.print(f"applied: ruleset version {body.version}")
    elif body.dry_run:
        console.print(f"dry run: nothing changed (stored version {body.version})")
    else:
        console.print(f"nothing to apply (version {body.version})")


@rules_app.command("delete")
def delete_rule(
    ref: str = typer.Argument(..., help="Rule id or name."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Delete without asking."),
    expected_version: int | None = ExpectedOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Delete one rule."""
    if not yes and not as_json and not typer.confirm(f"delete rule {ref!r}?"):
        raise typer.Exit(1)
    params = {} if expected_version is None else {"expected_version": expected_version}
    body = ApiClient("router", token).typed(Deleted, "DELETE", f"/v1/rules/{ref}", params=params)
    if as_json:
        print_model(body)
    else:
        console.print(f"deleted {ref}: ruleset version {body.version}")


def _alert_arg(value: str) -> dict[str, Any]:
    """An alert given inline as JSON, as a file path, or '-' for stdin."""
    text = value if value.lstrip().startswith("{") else _read(value)

    try:
        data = load_document(text)
    except Exception as exc:  # a CLI turns any parse problem into one clear line
        fail(f"cannot read the alert: {exc}")
    if not isinstance(data, dict):
        fail("the alert must be a JSON/YAML object")
    return data


@rules_app.command("explain")
def explain_alert(
    alert_arg: str | None = typer.Argument(None, metavar="ALERT", help="Alert JSON or file."),
    alert: str | None = typer.Option(None, "--alert", "--file", "-f", help="Alert JSON or file."),
    rules: str | None = RulesFileOption,
    source_token: str | None = typer.Option(
        None, "--source-token", help="Token id the alert was published with (tenancy)."
    ),
    source_team: str | None = typer.Option(
        None, "--source-team", help="With --rules: the team of that token, if a team token."
    ),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Which rules an alert matches, each condition's result, and where it goes.

    Team rules only see alerts from sources their team owns: give the publishing token with
    --source-token (the server looks up its team), else only org rules apply."""
    data = _alert_arg(_pick(alert_arg, alert, "alert"))
    source = {"token_id": source_token, "team": source_team}
    source = {k: v for k, v in source.items() if v}
    if rules is not None:  # offline: the same report the API returns, computed here
        body = Explanation.model_validate(
            explain(_local_rules(rules), parse_alert(data), source_of(source))
        )
    else:
        client = ApiClient("router", token)
        request: dict[str, Any] = {"alert": data, **({"source": source} if source else {})}
        body = client.typed(Explanation, "POST", "/v1/rules/explain", json=request)
    if as_json:
        print_model(body)
        return
    for rule in body.evaluated:
        mark = "[green]match[/]" if rule.matched else "[dim]no match[/]"
        kind = " (fallback)" if rule.fallback else ""
        console.print(f"#{rule.position} {rule.name}{kind}: {mark}", highlight=False)
        if rule.catch_all:
            console.print("    (no conditions: matches every alert)")
        for number, group in enumerate(rule.groups):
            console.print(f"  group {number}: {'true' if group.matched else 'false'}")
            for c in group.conditions:
                actual = "<missing>" if c.missing else json.dumps(c.value)
                values = ", ".join(str(v) for v in c.values)
                console.print(
                    f"    {'✓' if c.result else '✗'} {c.field} {c.operator} "
                    f"[{values}] (value {actual})",
                    highlight=False,
                    markup=False,
                )
    for skipped in body.out_of_scope:
        console.print(f"[dim]out of scope[/] {escape(skipped.name)}: {escape(skipped.reason)}")
    teams = ", ".join(body.teams) or "none: unrouted"
    console.print(f"teams: {teams} (ruleset version {body.ruleset_version})", highlight=False)


@rules_app.command("test")
def check_cases(
    path: str | None = typer.Argument(None, help="Cases file."),
    file: str | None = FileOption,
    rules: str | None = RulesFileOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Check cases (alert + expected teams); exit status 1 on any mismatch."""

    source = _pick(path, file, "cases file")
    try:
        cases = load_cases(load_document(_read(source)))
    except AlertyardError as exc:
        fail(f"{source}: {exc.detail}")
    if rules is not None:  # offline: the same report the API returns, computed here
        body = CaseReport.model_validate(run_cases(_local_rules(rules), cases))
    else:
        client = ApiClient("router", token)
        body = client.typed(CaseReport, "POST", "/v1/rules/test", json={"cases": cases})
    if as_json:
        print_model(body)
    else:
        for result in body.results:
            if result.passed:
                console.print(f"[green]PASS[/] {result.name}", highlight=False)
            else:
                console.print(
                    f"[red]FAIL[/] {result.name}: expected {result.expected_teams}, "
                    f"got {result.teams} (rules {result.matched_rules})",
                    highlight=False,
                )
        console.print(f"{body.total - body.failed}/{body.total} passed")
    if not body.passed:
        raise typer.Exit(1)


@rules_app.command("lint")
def lint_rules(
    path: str | None = typer.Argument(None, help="Rules file; the stored ruleset if omitted."),
    file: str | None = FileOption,
    teams: str | None = typer.Option(
        None, "--teams", help="Comma-separated known teams (offline unknown-team check)."
    ),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too."),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Unreachable, shadowed and never-matching rules, unknown teams. Offline for a file."""
    source = file or path
    if source is not None:
        known = {t.strip() for t in teams.split(",") if t.strip()} if teams else None
        findings = [LintFinding.model_validate(f) for f in lint(_local_rules(source), teams=known)]
    else:
        findings = ApiClient("router", token).typed(LintReport, "POST", "/v1/rules/lint").findings
    if as_json:
        print_json({"findings": [f.model_dump(mode="json", exclude_none=True) for f in findings]})
    elif findings:
        print_table([f.model_dump() for f in findings], ["severity", "kind", "rule", "message"])
    else:
        console.print("no findings")
    failing = [f for f in findings if strict or f.severity == "error"]
    if failing:
        raise typer.Exit(1)


sources_app = typer.Typer(
    help="Which teams own which alert sources (token ids); their team rules see those alerts.",
    no_args_is_help=True,
)
rules_app.add_typer(sources_app, name="sources")


@sources_app.command("list")
def list_sources(token: str | None = TokenOption, as_json: bool = JsonOption) -> None:
    """Source assignments (token id -> teams)."""
    body = ApiClient("router", token).typed(SourcesRead, "GET", "/v1/rules/sources")
    if as_json:
        print_model(body)
        return
    rows = [{"token_id": t, "teams": ", ".join(teams)} for t, teams in body.sources.items()]
    if rows:
        print_table(rows, ["token_id", "teams"])
    else:
        console.print(f"no sources assigned (ruleset version {body.version})")


@sources_app.command("assign")
def assign_source(
    token_id: str = typer.Argument(..., help="The producer's token id (tok_...)."),
    teams: list[str] = typer.Argument(..., help="Teams that own its alerts."),  # noqa: B008
    expected_version: int | None = ExpectedOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Make TEAMS the owners of the alerts TOKEN_ID publishes (admins only)."""
    params = {} if expected_version is None else {"expected_version": expected_version}
    body = ApiClient("router", token).typed(
        SourceChange, "PUT", f"/v1/rules/sources/{token_id}", json={"teams": teams}, params=params
    )
    _print_change(body, as_json)


@sources_app.command("remove")
def remove_source(
    token_id: str = typer.Argument(..., help="The producer's token id."),
    expected_version: int | None = ExpectedOption,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Remove TOKEN_ID's assignment: only org rules see its alerts again (admins only)."""
    params = {} if expected_version is None else {"expected_version": expected_version}
    body = ApiClient("router", token).typed(
        SourceChange, "DELETE", f"/v1/rules/sources/{token_id}", params=params
    )
    _print_change(body, as_json)


def register(app: typer.Typer) -> None:
    """Add the ``rules`` group to ``app``."""
    app.add_typer(rules_app, name="rules")


# -- backtest ----------------------------------------------------------------------------------

BACKTEST_MOVED_EXIT = 3
"""Exit status of ``backtest --exit-code`` when any alert would move."""


@rules_app.command("backtest")
def backtest_rules(
    rules: str = typer.Option(..., "--rules", help="Candidate rules file (YAML or JSON)."),
    baseline: str | None = typer.Option(
        None, "--baseline", help="Current rules file; default: the live ruleset (GET /v1/rules)."
    ),
    topic: str | None = typer.Option(
        None, "--topic", help="Alerts topic; default: ALERTYARD_TOPIC_ALERTS or 'alerts'."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Start time: ISO 8601 or a duration ago (2h). Default: earliest."
    ),
    from_offset: int | None = typer.Option(
        None, "--from-offset", min=0, help="Start at this offset in every partition."
    ),
    until: str | None = typer.Option(
        None, "--until", help="End time, excluded: ISO 8601 or a duration ago. Default: now."
    ),
    to_offset: int | None = typer.Option(
        None, "--to-offset", min=0, help="Stop before this offset in every partition."
    ),
    max_records: int = typer.Option(100_000, "--max", min=1, help="Read at most this many."),
    show: int = typer.Option(50, "--show", min=0, help="List at most this many moved alerts."),
    exit_code: bool = typer.Option(
        False, "--exit-code", help=f"Exit {BACKTEST_MOVED_EXIT} when any alert would move."
    ),
    bootstrap: str | None = typer.Option(None, "--bootstrap", help="Kafka bootstrap servers."),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Replay a range of the alerts topic through a candidate ruleset: which alerts would move.

    Reads without a consumer group (nothing is committed; the router is not disturbed).
    """
    candidate = _local_rules(rules)
    if baseline is not None:
        current = _local_rules(baseline)
    else:
        current = _as_ruleset(ApiClient("router", token).typed(RulesetRead, "GET", "/v1/rules"))
    settings = RouterSettings()
    servers = bootstrap or settings.kafka_bootstrap_servers
    try:
        window = BacktestRange(
            topic=topic or settings.topics.alerts,
            from_offset=from_offset,
            since=parse_instant(since) if since else None,
            to_offset=to_offset,
            until=parse_instant(until) if until else None,
            max_records=max_records,
        )
        window.check()
        report = _backtest_with_progress(
            servers, window, current, candidate, show=show, visible=not as_json
        )
    except AlertyardError as exc:
        fail(f"{exc.detail} [{exc.code}]")
    if as_json:
        sources = {"baseline_source": baseline or "live", "candidate_source": rules}
        print_json({**report.model_dump(mode="json"), **sources})
    else:
        _print_backtest(report, baseline_source=baseline or "live ruleset", candidate=rules)
    if exit_code and report.moved:
        raise typer.Exit(BACKTEST_MOVED_EXIT)


def _backtest_with_progress(
    bootstrap: str,
    window: BacktestRange,
    baseline: Ruleset,
    candidate: Ruleset,
    *,
    show: int,
    visible: bool,
) -> BacktestReport:
    """Run the backtest; a progress bar on stderr when it is a terminal."""
    stderr = Console(stderr=True)

    def run(on_progress: ProgressCallback | None = None) -> BacktestReport:
        return asyncio.run(
            run_backtest(
                bootstrap=bootstrap,
                window=window,
                baseline=baseline,
                candidate=candidate,
                moved_limit=show,
                on_progress=on_progress,
            )
        )

    if not (visible and stderr.is_terminal):
        return run()
    columns = (
        TextColumn("replaying {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task(window.topic, total=None)
        return run(lambda read, expected: progress.update(task, completed=read, total=expected))


def _print_backtest(report: BacktestReport, *, baseline_source: str, candidate: str) -> None:
    console.print(
        f"backtest of {report.topic}: {baseline_source} (version {report.baseline_version}) "
        f"-> {candidate}",
        highlight=False,
        markup=False,
    )
    reasons = ", ".join(f"{k} {v}" for k, v in report.skipped_reasons.items())
    summary = [
        {"": "read", "alerts": report.read},
        {"": "skipped (would be rejected)", "alerts": report.skipped, "note": reasons},
        {"": "evaluated", "alerts": report.evaluated},
        {
            "": "unchanged",
            "alerts": report.unchanged,
            "note": f"{report.rules_changed} through other rules" if report.rules_changed else "",
        },
        {"": "moved", "alerts": report.moved},
    ]
    title = None if report.complete else "stopped at --max before the end of the range"
    print_table(summary, ["", "alerts", "note"], title=title)
    if report.teams:
        shifts = [
            {**shift.model_dump(), "net": f"{shift.gained - shift.lost:+d}"}
            for shift in report.teams
        ]
        print_table(shifts, ["team", "gained", "lost", "net"], title="per team")
    if report.moved_alerts:
        rows = [
            {
                "at": f"{m.partition}/{m.offset}",
                "id": m.id or "-",
                "summary": escape(m.summary),  # producer text, not rich markup
                "teams": f"{_teams(m.before_teams)} -> {_teams(m.after_teams)}",
                "rules": f"{', '.join(m.before_rules) or '-'} -> {', '.join(m.after_rules) or '-'}",
            }
            for m in report.moved_alerts
        ]
        more = report.moved - len(report.moved_alerts)
        title = "moved alerts" + (f" (first {len(rows)}; {more} more)" if more else "")
        print_table(rows, ["at", "id", "summary", "teams", "rules"], title=title)
    console.print(
        f"{report.moved} of {report.evaluated} alerts would move", highlight=False, markup=False
    )


def _teams(teams: tuple[str, ...]) -> str:
    return ", ".join(teams) or "unrouted"
