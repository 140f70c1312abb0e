"""``alertyard rules backtest`` on the real broker: a file baseline, the live baseline through
the router API, the summary, ``--json`` and ``--exit-code``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from redis.asyncio import Redis
from typer.testing import CliRunner

from services.cli.main import app as cli
from services.rules.control.store import RulesStore
from services.rules.engine.documents import dump_rules_yaml
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.kafka import ensure_topics, make_producer

# The same in-thread uvicorn server the rules CLI round trip uses.
from tests.integration._processes import listen_socket
from tests.integration.rules._fixtures import add_teams, simple_rule, two_team_ruleset
from tests.integration.rules.test_cli_server import _serve

pytestmark = [pytest.mark.kafka, pytest.mark.redis]
runner = CliRunner()


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    """The baseline (two_team_ruleset) and a candidate that sends indexer alerts to platform."""
    baseline = tmp_path / "baseline.yaml"
    baseline.write_text(dump_rules_yaml(two_team_ruleset()))
    candidate = tmp_path / "candidate.yaml"
    rules = [
        simple_rule("payments-billing", "payments", "billing"),
        simple_rule("platform-indexer", "platform", "indexer"),
        {
            "name": "fallback",
            "owner_team": "platform",
            "destinations": ["platform"],
            "fallback": True,
        },
    ]
    candidate.write_text(yaml.safe_dump({"rules": rules}))
    return str(baseline), str(candidate)


async def _alerts_topic(bootstrap: str, unique: Callable[[str], str]) -> str:
    """Four alerts (billing, indexer, indexer, web) and one record that is not JSON."""
    topic = unique("backtest-cli")
    await ensure_topics(bootstrap, [topic], partitions=2)
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for n, service in enumerate(["billing", "indexer", "indexer", "web"]):
            body = {
                "id": f"c{n}",
                "source": "t",
                "summary": f"[red]{service} down",
                "service": service,
            }
            await producer.send(topic, json.dumps(body).encode(), partition=n % 2)
        await producer.send(topic, b"{oops", partition=0)
        await producer.flush()
    finally:
        await producer.stop()
    return topic


def _invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, ["rules", "backtest", *args])
    return result.exit_code, result.output


async def test_file_baseline_json_and_exit_code(
    kafka_bootstrap: str, unique: Callable[[str], str], files: tuple[str, str]
) -> None:
    baseline, candidate = files
    topic = await _alerts_topic(kafka_bootstrap, unique)
    common = ["--rules", candidate, "--baseline", baseline, "--topic", topic]
    common += ["--bootstrap", kafka_bootstrap]

    code, out = await asyncio.to_thread(_invoke, *common, "--json")
    assert code == 0, out
    body = json.loads(out)
    assert (body["read"], body["skipped"], body["evaluated"]) == (5, 1, 4)
    assert (body["unchanged"], body["moved"]) == (2, 2)
    assert body["skipped_reasons"] == {"invalid_json": 1}
    assert body["teams"] == [
        {"team": "platform", "gained": 2, "lost": 0},
        {"team": "search", "gained": 0, "lost": 2},
    ]
    assert sorted(m["id"] for m in body["moved_alerts"]) == ["c1", "c2"]
    assert body["baseline_source"] == baseline

    code, out = await asyncio.to_thread(_invoke, *common, "--exit-code", "--show", "1")
    assert code == 3, out
    assert "2 of 4 alerts would move" in out
    assert "first 1; 1 more" in out
    assert "[red]indexer down" in out  # producer text printed literally, not as markup
    assert "search -> platform" in out

    # Nothing moves when the candidate is the baseline: exit 0 even with --exit-code.
    same = ["--rules", baseline, "--baseline", baseline, "--topic", topic]
    code, out = await asyncio.to_thread(
        _invoke, *same, "--bootstrap", kafka_bootstrap, "--exit-code"
    )
    assert code == 0, out
    assert "0 of 4 alerts would move" in out


async def test_live_baseline_through_the_router_api(
    kafka_bootstrap: str,
    unique: Callable[[str], str],
    files: tuple[str, str],
    redis: Redis,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, candidate = files
    topic = await _alerts_topic(kafka_bootstrap, unique)
    await add_teams(redis)
    await RulesStore(redis).apply(two_team_ruleset(), principal=None)  # version 1
    token, _ = await issue_token(
        redis, test_settings(redis_url), permissions=[Permission.rules_read]
    )
    sock = listen_socket()
    port = sock.getsockname()[1]
    server, thread = _serve(redis_url, sock)
    try:
        monkeypatch.setenv("ALERTYARD_ROUTER_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("ALERTYARD_TOKEN", token)
        monkeypatch.setenv("ALERTYARD_KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
        code, out = await asyncio.to_thread(
            _invoke, "--rules", candidate, "--topic", topic, "--json"
        )
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
    assert code == 0, out
    body = json.loads(out)
    assert (body["baseline_version"], body["baseline_source"]) == (1, "live")
    assert (body["read"], body["moved"]) == (5, 2)
    assert token not in out


def test_range_options_are_checked(files: tuple[str, str]) -> None:
    baseline, candidate = files
    common = ["--rules", candidate, "--baseline", baseline, "--topic", "unused"]
    code, out = _invoke(*common, "--since", "2h", "--from-offset", "3")
    assert code == 1
    assert "not both" in out
    code, out = _invoke(*common, "--until", "last tuesday")
    assert code == 1
    assert "neither an ISO 8601 time nor a duration" in out
