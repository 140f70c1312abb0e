"""``alertyard send`` and ``alertyard tail`` against the real broker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from shared.headers import RejectedHeaders, header_value
from shared.kafka import ensure_topics, make_producer
from tests.integration.router._harness import Collector

pytestmark = pytest.mark.kafka

TOKEN = "ayg_" + "x" * 60  # not checked by the CLI; the router does that


async def test_send_one_and_many_with_the_bearer_header(
    kafka_bootstrap: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    topic = unique("cli-alerts")
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    collector = Collector(kafka_bootstrap, [topic])
    await collector.start()
    lines = [json.dumps({"id": f"f{n}", "source": "cron", "summary": f"job {n}"}) for n in range(5)]
    lines.append('{"source": "broken"}')
    jsonl = tmp_path / "alerts.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    common = ["--bootstrap", kafka_bootstrap, "--topic", topic, "--token", TOKEN]

    def invoke(args: list[str]) -> tuple[int, str]:
        result = runner.invoke(app, args)
        return result.exit_code, result.output

    code, out = await asyncio.to_thread(
        invoke, ["send", *common, "--source", "ci", "--summary", "build red", "--id", "one"]
    )
    assert code == 0, out
    assert "sent alert one" in out
    code, out = await asyncio.to_thread(invoke, ["send", *common, "--file", str(jsonl)])
    assert code == 0, out
    assert "sent 5, invalid 1, failed 0" in out
    await collector.wait_for(lambda: len(collector.records[topic]) == 6)
    for record in collector.records[topic]:
        assert header_value(record.headers, "authorization") == f"Bearer {TOKEN}".encode()
    assert TOKEN not in out
    await collector.stop()


async def test_tail_prints_routed_and_rejected(
    kafka_bootstrap: str, unique: Callable[[str], str]
) -> None:
    prefix = unique("cli")
    monkey_env = {
        "ALERTYARD_TOPIC_TEAM_PREFIX": f"{prefix}.team.",
        "ALERTYARD_TOPIC_REJECTED": f"{prefix}.rejected",
    }
    team_topic = f"{prefix}.team.dba"
    await ensure_topics(kafka_bootstrap, [team_topic, f"{prefix}.rejected"], partitions=1)
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    body = {"id": "x1", "source": "s", "summary": "disk full", "severity": "critical"}
    routed = [
        ("alertyard-alert-id", b"x1"),
        ("alertyard-team", b"dba"),
        ("alertyard-rule-ids", b"r1"),
        ("alertyard-ruleset-version", b"4"),
        ("alertyard-token-id", b"tok"),
        ("alertyard-source", b"alerts/0/1"),
    ]
    await producer.send_and_wait(team_topic, json.dumps(body).encode(), headers=routed)
    rejected = RejectedHeaders(
        reason="invalid_json", detail="bad", source_topic="alerts", source_partition=0,
        source_offset=2,
    )  # fmt: skip
    await producer.send_and_wait(f"{prefix}.rejected", b"{nope", headers=rejected.to_kafka())
    await producer.stop()
    runner = CliRunner(env=monkey_env)

    def invoke(args: list[str]) -> tuple[int, str]:
        result = runner.invoke(app, args)
        return result.exit_code, result.output

    base = ["--bootstrap", kafka_bootstrap, "--from-beginning", "--max", "1"]
    code, out = await asyncio.to_thread(invoke, ["tail", "--team", "dba", "--json", *base])
    assert code == 0, out
    shown = json.loads(out)
    assert shown["alert"]["id"] == "x1"
    assert shown["routing"]["ruleset_version"] == 4
    code, out = await asyncio.to_thread(invoke, ["tail", "--team", "dba", *base])
    assert code == 0, out
    assert "disk full" in out
    code, out = await asyncio.to_thread(invoke, ["tail", "--rejected", *base])
    assert code == 0, out
    assert "invalid_json" in out
