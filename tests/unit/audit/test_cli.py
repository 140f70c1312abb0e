"""``alertyard audit verify`` works offline on a copy, with only the public key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from services.audit.segments import list_segments
from services.audit.signing import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE
from services.cli.audit import parse_time
from services.cli.main import app
from tests.unit.audit._helpers import write_log

runner = CliRunner()


def _auditors_copy(tmp_path: Path) -> tuple[Path, Path]:
    """The log copied without the private key, and the public key kept apart."""
    write_log(tmp_path / "live", 40)
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path / "live", copy)
    (copy / PRIVATE_KEY_FILE).unlink()
    public = tmp_path / "auditor.pub.pem"
    shutil.move(copy / PUBLIC_KEY_FILE, public)
    return copy, public


def test_verify_ok_offline(tmp_path: Path) -> None:
    copy, public = _auditors_copy(tmp_path)
    result = runner.invoke(
        app, ["audit", "verify", "--dir", str(copy), "--public-key", str(public)]
    )
    assert result.exit_code == 0, result.output
    assert "OK head seq 40" in result.output


def test_verify_reports_the_first_bad_seq_and_exits_1(tmp_path: Path) -> None:
    copy, public = _auditors_copy(tmp_path)
    _, path = list_segments(copy)[1]
    lines = path.read_bytes().splitlines(keepends=True)
    first = json.loads(lines[0])["seq"]
    lines[0] = lines[0].replace(b"token/", b"token/x")
    path.write_bytes(b"".join(lines))
    args = ["audit", "verify", "--dir", str(copy), "--public-key", str(public)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert f"first bad seq: {first}" in result.output
    report = json.loads(runner.invoke(app, [*args, "--json"]).output)
    assert (report["ok"], report["first_bad_seq"]) == (False, first)
    assert report["problems"][0]["kind"] == "modified"


def test_verify_without_a_key_fails_clearly(tmp_path: Path) -> None:
    copy, _ = _auditors_copy(tmp_path)
    result = runner.invoke(app, ["audit", "verify", "--dir", str(copy)])
    assert result.exit_code == 1
    assert "cannot load public key" in result.output


def test_parse_time() -> None:
    assert parse_time("2026-01-02T03:04:05+00:00") == "2026-01-02T03:04:05+00:00"
    assert parse_time("2h").endswith("+00:00")
