"""The real services (tokens, router, audit, console) as subprocesses on free ports against
the test Kafka and Redis, seeded with teams, rules and 130 routed alerts; and Debian's
Chromium driven by Playwright (``playwright install`` is never needed)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, async_playwright

from services.rules.control.store import RulesStore
from services.rules.engine.model import Ruleset
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.headers import AUTHORIZATION
from shared.kafka import ensure_topics, make_producer
from shared.redis import make_redis
from tests._waiting import eventually
from tests.integration._processes import free_port, start_service, wait_ready

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ALERTS = 130
HOSTILE_SUMMARY = (
    '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    "\"'><svg onload=window.__pwned=3>"
)
RULESET = {
    "rules": [
        {
            "name": "payments-checkout",
            "owner_team": "payments",
            "destinations": ["payments"],
            "condition_groups": [
                {
                    "conditions": [
                        {"field": "service", "operator": "is_one_of", "values": ["checkout"]},
                        {"field": "labels.env", "operator": "is_not_one_of", "values": ["dev"]},
                    ]
                }
            ],
        },
        {
            "name": "payments-own",
            "owner_team": "payments",
            "scope": "team",  # a team rule: payments' own tokens may edit it (#11)
            "destinations": ["payments"],
            "condition_groups": [
                {
                    "conditions": [
                        {"field": "service", "operator": "is_one_of", "values": ["ledger"]}
                    ]
                }
            ],
        },
        {
            "name": "search-everything",
            "owner_team": "search",
            "destinations": ["search"],
            "condition_groups": [
                {"conditions": [{"field": "service", "operator": "equals", "value": "search"}]}
            ],
        },
        {
            "name": "platform-fallback",
            "owner_team": "platform",
            "destinations": ["platform"],
            "fallback": True,
        },
    ]
}


@dataclass
class Stack:
    console: str
    """The console's base URL."""
    audit: str
    router: str
    tokens: str
    admin_token: str
    admin_user_id: str
    alert_ids: list[str]
    """Newest first, as the list shows them."""
    hostile_id: str
    logs: Path
    """Where the services write their logs (checked for secrets at the end)."""
    ports: dict[str, int] = field(default_factory=dict)


def _env(base: dict[str, str], **values: str) -> dict[str, str]:
    return {**base, **values}


@pytest.fixture(scope="package")
async def stack(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    tag = uuid.uuid4().hex[:10]
    topics = {
        "ALERTYARD_TOPIC_ALERTS": f"c-{tag}.alerts",
        "ALERTYARD_TOPIC_TEAM_PREFIX": f"c-{tag}.team.",
        "ALERTYARD_TOPIC_UNROUTED": f"c-{tag}.unrouted",
        "ALERTYARD_TOPIC_REJECTED": f"c-{tag}.rejected",
        "ALERTYARD_TOPIC_AUDIT": f"c-{tag}.audit",
        # Its own decisions topic: the router's indexer group is new, so it reads its topic from
        # the start, and on a shared one it would list every router's earlier decisions too.
        "ALERTYARD_TOPIC_DECISIONS": f"c-{tag}.decisions",
        "ALERTYARD_TOPIC_PARTITIONS": "3",
    }
    await ensure_topics(
        kafka_bootstrap,
        [topics[k] for k in topics if k.endswith(("ALERTS", "UNROUTED", "REJECTED", "AUDIT"))],
        partitions=3,
    )
    redis = make_redis(redis_url)
    await redis.flushdb()
    settings = test_settings(redis_url)
    admin_token, admin = await issue_token(redis, settings, kind="user", role="owner")
    producer_token, _ = await issue_token(
        redis, settings, kind="global", permissions=[Permission.alerts_publish]
    )
    for team in ("payments", "search", "platform"):
        await issue_token(redis, settings, kind="team", team=team)  # creates the team
    await RulesStore(redis).apply(Ruleset.model_validate(RULESET), principal=None)

    ports = {name: free_port() for name in ("tokens", "router", "audit", "console")}
    logs = tmp_path_factory.mktemp("console-services")
    base = _env(
        dict(os.environ),
        ALERTYARD_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        ALERTYARD_REDIS_URL=redis_url,
        ALERTYARD_TOKENS_HMAC_SECRET=settings.hmac_secret.get_secret_value(),
        ALERTYARD_LOG_FORMAT="json",
        **topics,
    )
    envs = {
        "tokens": _env(base, ALERTYARD_TOKENS_HTTP_PORT=str(ports["tokens"])),
        "router": _env(
            base,
            ALERTYARD_ROUTER_HTTP_PORT=str(ports["router"]),
            ALERTYARD_ROUTER_GROUP_ID=f"router-{tag}",
            ALERTYARD_ROUTER_BATCH_TIMEOUT_MS="20",
        ),
        "audit": _env(
            base,
            ALERTYARD_AUDIT_HTTP_PORT=str(ports["audit"]),
            ALERTYARD_AUDIT_GROUP_ID=f"audit-{tag}",
            ALERTYARD_AUDIT_LOG_DIR=str(logs / "audit"),
            ALERTYARD_AUDIT_CHECKPOINT_EVERY_RECORDS="5",
        ),
        "console": _env(
            base,
            ALERTYARD_CONSOLE_HTTP_PORT=str(ports["console"]),
            ALERTYARD_TOKENS_URL=f"http://127.0.0.1:{ports['tokens']}",
            ALERTYARD_ROUTER_URL=f"http://127.0.0.1:{ports['router']}",
            ALERTYARD_AUDIT_URL=f"http://127.0.0.1:{ports['audit']}",
        ),
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, env in envs.items():
            procs[name] = start_service(name, env, logs / f"{name}.log")
        for name, proc in procs.items():
            await wait_ready(ports[name], proc)
        ids = await _send_alerts(kafka_bootstrap, topics["ALERTYARD_TOPIC_ALERTS"], producer_token)
        router = f"http://127.0.0.1:{ports['router']}"
        await eventually(lambda: _all_routed(router, admin_token), what="130 routing decisions")
        assert admin.user_id is not None
        yield Stack(
            console=f"http://127.0.0.1:{ports['console']}",
            audit=f"http://127.0.0.1:{ports['audit']}",
            router=router,
            tokens=f"http://127.0.0.1:{ports['tokens']}",
            admin_token=admin_token,
            admin_user_id=admin.user_id,
            alert_ids=list(reversed(ids)),
            hostile_id=ids[-1],
            logs=logs,
            ports=ports,
        )
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        await redis.flushdb()
        await redis.aclose()


async def _send_alerts(bootstrap: str, topic: str, token: str) -> list[str]:
    """130 alerts on one partition (one key), so the router receives them in order: the list
    shows them newest first (ties in the receive millisecond go by id, which sorts as sent).
    The last one carries a hostile summary."""
    producer = make_producer(bootstrap)
    await producer.start()
    ids: list[str] = []
    try:
        for n in range(ALERTS):
            alert_id = f"alert-{n:03d}-{uuid.uuid4().hex[:6]}"
            hostile = n == ALERTS - 1
            body = {
                "id": alert_id,
                "source": "browser-test",
                "summary": HOSTILE_SUMMARY if hostile else f"checkout latency #{n}",
                "severity": ("critical", "error", "warning", "info")[n % 4],
                "status": "resolved" if n % 5 == 0 else "firing",
                "service": "search" if hostile else "checkout",
                "labels": {"env": "prod", "n": str(n)},
            }
            await (
                await producer.send(
                    topic,
                    key=b"browser-test",
                    value=json.dumps(body).encode(),
                    headers=[(AUTHORIZATION, f"Bearer {token}".encode())],
                )
            )
            ids.append(alert_id)
    finally:
        await producer.stop()
    return ids


async def _all_routed(router: str, token: str) -> bool:
    seen = 0
    cursor: str | None = None
    async with httpx.AsyncClient(base_url=router, timeout=10) as http:
        while True:
            params: dict[str, Any] = {"limit": 50}
            if cursor:
                params["cursor"] = cursor
            page = (
                await http.get(
                    "/v1/alerts", params=params, headers={"authorization": f"Bearer {token}"}
                )
            ).json()
            seen += len(page["items"])
            if not (cursor := page["next_cursor"]):
                return seen >= ALERTS


@pytest.fixture(scope="package")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (make test does)")
    return CHROMIUM


@pytest.fixture(scope="package")
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=chromium_path, args=CHROMIUM_ARGS
        )
        yield chromium
        await chromium.close()
