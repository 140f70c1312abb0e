"""``alertyard send --format ...`` (a record the router converts) and ``alertyard ingest
sample`` (through the ingest service) against the real services."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.cli.main import app
from shared.headers import header_value
from shared.kafka import ensure_topics
from tests.integration.ingest._payloads import am_alert, am_webhook
from tests.integration.ingest.conftest import IngestEnv
from tests.integration.router._harness import Collector

pytestmark = [pytest.mark.kafka, pytest.mark.redis]

TOKEN = "ayg_" + "x" * 60  # not checked by `send`; the router does that


def _invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, args, env=env)
    return result.exit_code, result.output


async def test_send_format_alertmanager_publishes_one_record_with_the_format_header(
    kafka_bootstrap: str, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    topic = unique("cli-formats")
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    collector = Collector(kafka_bootstrap, [topic])
    await collector.start()
    webhook = tmp_path / "webhook.json"
    webhook.write_text(json.dumps(am_webhook(am_alert(fingerprint="x1"), am_alert())))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(am_webhook({**am_alert(), "status": "pending"})))
    common = ["send", "--bootstrap", kafka_bootstrap, "--topic", topic, "--token", TOKEN]
    try:
        code, out = await asyncio.to_thread(
            _invoke, [*common, "--format", "alertmanager", "--file", str(webhook)]
        )
        assert code == 0, out
        assert "sent 2 alert(s) as one alertmanager record" in out
        code, out = await asyncio.to_thread(
            _invoke, [*common, "--format", "alertmanager", "--file", str(broken)]
        )
        assert code == 1
        assert "nothing was sent" in out
        await collector.wait_for(lambda: len(collector.records[topic]) == 1)
        (record,) = collector.records[topic]
        assert header_value(record.headers, "alertyard-format") == b"alertmanager"
        assert json.loads(record.value)["alerts"][0]["fingerprint"] == "x1"
    finally:
        await collector.stop()


@pytest.mark.parametrize("fmt", ["alertmanager", "native", "pagerduty"])
async def test_ingest_sample_posts_to_the_ingest_service(ingest_env: IngestEnv, fmt: str) -> None:
    env = {"ALERTYARD_INGEST_URL": ingest_env.url, "ALERTYARD_TOKEN": ingest_env.token}
    code, out = await asyncio.to_thread(
        _invoke, ["ingest", "sample", "--format", fmt, "--wait", "0", "--json"], env
    )
    assert code == 0, out
    assert ingest_env.token not in out
    if fmt == "pagerduty":
        assert "Event processed" in out
        return
    answer = json.loads(out[out.index("{") :])
    assert answer["ingest"]["accepted"] == 1
    (alert_id,) = answer["ingest"]["alert_ids"]
    topic = ingest_env.settings.topics.alerts

    def arrived() -> bool:
        return any(
            json.loads(r.value)["id"] == alert_id for r in ingest_env.collector.records[topic]
        )

    await ingest_env.collector.wait_for(arrived)
