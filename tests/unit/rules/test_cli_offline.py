"""The offline CLI commands on the shipped examples: lint, test and explain need no server."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from services.cli.main import app

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_examples_lint_clean_and_cases_pass() -> None:
    rules = str(EXAMPLES / "rules.yaml")
    linted = runner.invoke(
        app,
        [
            "rules",
            "lint",
            rules,
            "--strict",
            "--json",
            "--teams",
            "payments,platform,search,security",
        ],
    )
    assert linted.exit_code == 0, linted.output
    assert json.loads(linted.output) == {"findings": []}
    tested = runner.invoke(
        app, ["rules", "test", "-f", str(EXAMPLES / "rules-tests.yaml"), "--rules", rules]
    )
    assert tested.exit_code == 0, tested.output
    assert "9/9 passed" in tested.output


def test_failing_case_exits_1(tmp_path: Path) -> None:
    cases = tmp_path / "cases.yaml"
    cases.write_text(
        "cases:\n  - name: wrong\n    alert: {service: checkout}\n    expect_teams: [search]\n"
    )
    result = runner.invoke(
        app, ["rules", "test", str(cases), "--rules", str(EXAMPLES / "rules.yaml"), "--json"]
    )
    assert result.exit_code == 1
    body = json.loads(result.output)
    assert body["results"][0]["teams"] == ["payments"]


def test_explain_offline_json() -> None:
    alert = json.dumps({"service": "webhook-gateway", "payload": {"provider": "adyen"}})
    result = runner.invoke(
        app,
        ["rules", "explain", "--alert", alert, "--rules", str(EXAMPLES / "rules.yaml"), "--json"],
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["teams"] == ["payments", "platform"]
    assert [m["name"] for m in body["matched_rules"]] == ["payments-webhooks"]


def test_lint_reports_problems_and_invalid_files(tmp_path: Path) -> None:
    shadowed = tmp_path / "rules.yaml"
    shadowed.write_text(
        "rules:\n"
        "  - {name: a, owner_team: p, destinations: [p]}\n"
        "  - name: b\n    owner_team: p\n    destinations: [p]\n"
        "    condition_groups: [{conditions: [{field: service, operator: exists}]}]\n"
    )
    result = runner.invoke(app, ["rules", "lint", str(shadowed), "--json"])
    assert result.exit_code == 0  # warnings only
    assert json.loads(result.output)["findings"][0]["kind"] == "unreachable"
    assert runner.invoke(app, ["rules", "lint", str(shadowed), "--strict"]).exit_code == 1

    invalid = tmp_path / "bad.yaml"
    invalid.write_text(
        "rules:\n  - name: a\n    owner_team: p\n    destinations: [p]\n"
        "    condition_groups:\n"
        "      - conditions: [{field: service, operator: is_one_of, values: []}]\n"
    )
    result = runner.invoke(app, ["rules", "lint", str(invalid)])
    assert result.exit_code == 1
    assert "empty value list" in result.output
