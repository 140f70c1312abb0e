"""Every line every service writes is JSON and holds no secret: shown on real output.

The test runs its own broker and Redis (``scripts/stack`` in a temporary directory, on ports
bound here), starts the tokens, router and audit services as processes with their output in
files, drives traffic that makes the libraries log (failed and refused requests, a bad token on
Kafka, a broker restart under the running services), then reads the files line by line.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.tokens.testing import issue_token, test_settings
from shared.auth import TOKEN_RE
from shared.kafka import ensure_topics, make_consumer, make_producer
from shared.redis import make_redis
from tests._waiting import eventually
from tests.integration._processes import ROOT, free_port, start_service, wait_ready

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

SERVICES = ("tokens", "router", "audit")


def _free_port_pair() -> int:
    """A port P with P+1 free too (the stack's broker and its controller), both bound here."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise AssertionError("no two consecutive free ports")


class Stack:
    """A private single-broker stack, driven through the project's own script."""

    def __init__(self, state: Path) -> None:
        default_state = Path(os.environ.get("ALERTYARD_STACK_DIR", ROOT / ".stack"))
        self.env = {
            **os.environ,
            "ALERTYARD_STACK_DIR": str(state),
            "ALERTYARD_STACK_JARS": str(default_state / "jars"),  # fetched once, shared
            "ALERTYARD_STACK_KAFKA_PORT": str(_free_port_pair()),
            "ALERTYARD_STACK_REDIS_PORT": str(free_port()),
        }
        self.state = state
        self.bootstrap = f"127.0.0.1:{self.env['ALERTYARD_STACK_KAFKA_PORT']}"
        self.redis_url = f"redis://127.0.0.1:{self.env['ALERTYARD_STACK_REDIS_PORT']}/0"

    def run(self, *args: str) -> None:
        subprocess.run(
            [str(ROOT / "scripts" / "stack"), *args],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=300,
        )

    def stop_broker(self) -> None:
        pid = int((self.state / "kafka-1" / "pid").read_text())
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)  # polling a process we signalled; not synchronising threads
        os.kill(pid, signal.SIGKILL)


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()]


def _records(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(_lines(path), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"{path.name}:{number} is not JSON: {line[:300]}") from None
    return records


async def test_every_service_log_line_is_json_and_secret_free(tmp_path: Path) -> None:
    stack = Stack(tmp_path / "stack")
    stack.run("up")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: tmp_path / f"{name}.log" for name in SERVICES}
    try:
        redis = make_redis(stack.redis_url)
        tokens = test_settings(stack.redis_url)
        admin, _ = await issue_token(redis, tokens, kind="global")
        team, _ = await issue_token(redis, tokens, kind="team", team="payments")
        secrets = [admin, team, tokens.hmac_secret.get_secret_value()]
        ports = {name: free_port() for name in SERVICES}
        env = {
            **os.environ,
            "ALERTYARD_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
            "ALERTYARD_REDIS_URL": stack.redis_url,
            "ALERTYARD_TOKENS_HMAC_SECRET": secrets[2],
            "ALERTYARD_LOG_LEVEL": "info",
            "ALERTYARD_AUDIT_LOG_DIR": str(tmp_path / "audit"),
            "ALERTYARD_ROUTER_PROVISION_TEAMS": '["payments"]',
            **{f"ALERTYARD_{n.upper()}_HTTP_PORT": str(p) for n, p in ports.items()},
        }
        env.pop("ALERTYARD_LOG_FORMAT", None)  # "auto": JSON because the output is a file
        for name in SERVICES:
            procs[name] = start_service(name, env, logs[name])
        for name in SERVICES:
            await wait_ready(ports[name], procs[name])

        await _drive_http(ports, admin, team)
        await ensure_topics(stack.bootstrap, ["alerts", "alerts.team.payments"], partitions=1)
        await _send(stack.bootstrap, "ayg_" + "B" * 52)  # token-shaped garbage: rejected
        await _send_and_wait_routed(stack.bootstrap, team)

        # A broker restart under the running services: aiokafka logs through our chain.
        stack.stop_broker()
        await eventually(
            lambda: any('"aiokafka' in line for line in _lines(logs["router"])),
            what="aiokafka to log the lost broker",
        )
        stack.run("up")
        await _send_and_wait_routed(stack.bootstrap, team, within=120)
        await redis.aclose()
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        stack.run("down")

    library_loggers: set[str] = set()
    statuses: set[int] = set()
    for name, path in logs.items():
        text = path.read_text(errors="replace")
        for secret in secrets:
            assert secret not in text, f"a secret in {name}'s log"
        assert not TOKEN_RE.search(text), f"a token-shaped string in {name}'s log"
        for record in _records(path):
            assert {"event", "level", "timestamp"} <= record.keys(), record
            logger = str(record.get("logger", ""))
            if not logger.startswith(("services.", "alertyard", "shared.")):
                library_loggers.add(logger.split(".")[0])
            if record["event"] == "http_request":
                statuses.add(int(record["status"]))
    assert "aiokafka" in library_loggers  # library lines are in the chain, not plain text
    assert {400, 401, 404, 413} <= statuses


async def _drive_http(ports: dict[str, int], admin: str, team: str) -> None:
    garbage = "ayg_" + "C" * 52
    async with httpx.AsyncClient() as http:
        for port in ports.values():
            base = f"http://127.0.0.1:{port}"
            assert (await http.get(f"{base}/nope")).status_code == 404
            wrong = await http.get(f"{base}/v1/anything", headers={"authorization": garbage})
            assert wrong.status_code in (401, 404)
            in_url = await http.get(f"{base}/healthz", params={"access_token": admin})
            assert in_url.status_code == 400
            big = await http.post(f"{base}/v1/rules", content=b"x" * (2 << 20))
            assert big.status_code == 413
        rules = f"http://127.0.0.1:{ports['router']}/v1/rules"
        for token in (garbage, team[:-2] + "zz"):
            denied = await http.get(rules, headers={"authorization": f"Bearer {token}"})
            assert denied.status_code == 401
        created = await http.post(
            f"http://127.0.0.1:{ports['tokens']}/v1/teams",
            headers={"authorization": f"Bearer {admin}"},
            json={"name": "payments"},
        )
        assert created.status_code in (201, 409)
        rule = await http.post(
            rules,
            headers={"authorization": f"Bearer {team}"},
            json={"name": "all-mine", "owner_team": "payments", "destinations": ["payments"]},
        )
        assert rule.status_code == 201, rule.text


async def _send(bootstrap: str, token: str, alert_id: str | None = None) -> str:
    alert_id = alert_id or uuid.uuid4().hex
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        body = {"id": alert_id, "source": "log-test", "summary": f"token {token} in a summary"}
        await producer.send_and_wait(
            "alerts",
            json.dumps(body).encode(),
            key=alert_id.encode(),
            headers=[("authorization", f"Bearer {token}".encode())],
        )
    finally:
        await producer.stop()
    return alert_id


async def _send_and_wait_routed(bootstrap: str, token: str, within: float = 60.0) -> None:
    """Send until one alert reaches the team topic (the router may still be reconnecting)."""
    consumer = make_consumer(
        bootstrap, "alerts.team.payments", group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    deadline = time.monotonic() + within
    try:
        wanted = {await _send(bootstrap, token)}
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            seen = {r.key.decode() for records in batch.values() for r in records if r.key}
            if wanted & seen:
                return
        raise AssertionError("the router did not route the alert")
    finally:
        await consumer.stop()
