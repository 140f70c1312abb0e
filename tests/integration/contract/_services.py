"""The HTTP services (tokens, router, audit, ingest) as real processes on bound sockets, on the
test Kafka and Redis, with the principals the contract tests call them as.

Principals are chosen so that nothing a fuzzer sends can take away the test's own credentials:

* ``setup``: a global token with every permission; only this module uses it (never a fuzzer).
* ``member``: a member user of the test's own team (``tokens:*`` on its own and its team's
  tokens, ``rules:write`` on its team's rules): fuzzes tokens, rules and alerts.
* ``directory``: a global token with ``teams:write`` and ``users:write`` only (no
  ``tokens:write``, so it can revoke nothing): fuzzes teams and users.
* ``rules_admin``: a global token with ``rules:*`` and ``alerts:read`` only (org rules and
  source assignments; no token rights at all).
* ``auditor``: ``audit:read`` only. ``publisher``: ``alerts:publish`` only (ingest).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.kafka import ensure_topics
from shared.redis import make_redis
from shared.serving import listen_socket
from tests.integration._processes import start_service, wait_ready

__all__ = ["SERVICES", "Services", "running_services"]

SERVICES = ("tokens", "router", "audit", "ingest")


@dataclass(frozen=True)
class Services:
    urls: dict[str, str]
    """Base URL per service name."""
    tokens: dict[str, str]
    """Raw token per principal (``setup``, ``member``, ``directory``, ``auditor``, ...)."""
    token_ids: dict[str, str]
    protected: tuple[str, ...]
    """Ids of the test's own tokens and users, which no fuzzer's call may name."""
    team: str
    """The test's own team: the member's team, where its writes land."""
    logs: Path


@contextlib.asynccontextmanager
async def running_services(
    kafka_bootstrap: str, redis_url: str, logs: Path
) -> AsyncIterator[Services]:
    tag = uuid.uuid4().hex[:10]
    topics = {
        "ALERTYARD_TOPIC_ALERTS": f"ct-{tag}.alerts",
        "ALERTYARD_TOPIC_TEAM_PREFIX": f"ct-{tag}.team.",
        "ALERTYARD_TOPIC_UNROUTED": f"ct-{tag}.unrouted",
        "ALERTYARD_TOPIC_REJECTED": f"ct-{tag}.rejected",
        "ALERTYARD_TOPIC_AUDIT": f"ct-{tag}.audit",
        "ALERTYARD_TOPIC_DECISIONS": f"ct-{tag}.decisions",
        "ALERTYARD_TOPIC_PARTITIONS": "1",
    }
    await ensure_topics(
        kafka_bootstrap,
        [v for k, v in topics.items() if k != "ALERTYARD_TOPIC_TEAM_PREFIX" and "." in v],
        partitions=1,
    )
    redis = make_redis(redis_url)
    await redis.flushdb()
    settings = test_settings(redis_url)
    team = f"contract-{tag[:6]}"
    issued = {
        "setup": await issue_token(redis, settings, kind="global"),
        "member": await issue_token(redis, settings, kind="user", role="member", team=team),
        "directory": await issue_token(
            redis,
            settings,
            kind="global",
            permissions=[Permission.teams_write, Permission.users_write, Permission.rules_read],
        ),
        "rules_admin": await issue_token(
            redis,
            settings,
            kind="global",
            permissions=[Permission.rules_read, Permission.rules_write, Permission.alerts_read],
        ),
        "auditor": await issue_token(
            redis, settings, kind="global", permissions=[Permission.audit_read]
        ),
        "publisher": await issue_token(
            redis, settings, kind="global", permissions=[Permission.alerts_publish]
        ),
    }
    base = {
        **os.environ,
        "ALERTYARD_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ALERTYARD_REDIS_URL": redis_url,
        "ALERTYARD_TOKENS_HMAC_SECRET": settings.hmac_secret.get_secret_value(),
        "ALERTYARD_LOG_FORMAT": "json",
        # A fuzzer sends many bad tokens on purpose: the failed-auth limiter must not lock the
        # test's own address out (429 stays documented and is tested in tests/integration).
        "ALERTYARD_AUTH_FAIL_LIMIT": "1000000",
        **topics,
    }
    extra = {
        "router": {
            "ALERTYARD_ROUTER_GROUP_ID": f"router-{tag}",
            "ALERTYARD_ROUTER_BATCH_TIMEOUT_MS": "20",
        },
        "audit": {
            "ALERTYARD_AUDIT_GROUP_ID": f"audit-{tag}",
            "ALERTYARD_AUDIT_LOG_DIR": str(logs / "audit"),
        },
        "ingest": {"ALERTYARD_INGEST_RATE_LIMIT": "1000000/minute"},
    }
    sockets: dict[str, socket.socket] = {name: listen_socket() for name in SERVICES}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in SERVICES:
            env = {**base, **extra.get(name, {})}
            procs[name] = start_service(name, env, logs / f"{name}.log", sock=sockets[name])
        ports = {name: sock.getsockname()[1] for name, sock in sockets.items()}
        for name, proc in procs.items():
            await wait_ready(ports[name], proc)
        yield Services(
            urls={name: f"http://127.0.0.1:{port}" for name, port in ports.items()},
            tokens={who: raw for who, (raw, _) in issued.items()},
            token_ids={who: principal.token_id for who, (_, principal) in issued.items()},
            protected=tuple(
                value
                for _, principal in issued.values()
                for value in (principal.token_id, principal.user_id)
                if value is not None
            ),
            team=team,
            logs=logs,
        )
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for sock in sockets.values():
            sock.close()
        await redis.flushdb()
        await redis.aclose()
