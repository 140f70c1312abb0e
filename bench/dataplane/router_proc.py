"""Router processes for the benchmark: ``python -m services.router.main`` with env settings,
HTTP on a socket this process bound (port 0), JSON logs to a file. Whatever Kafka client the router
uses, its progress is read from outside: group membership and committed offsets (admin
requests) and its ``/metrics``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, ConsumerGroupState, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.dataplane.workload import TEAMS, Workload
from shared.serving import listen_socket
from shared.settings import RouterSettings, TopicSettings

__all__ = [
    "RouterProcess",
    "committed_total",
    "group_assignment",
    "setting_available",
    "start_router",
    "wait_committed",
    "wait_group",
    "wait_rebalancing",
]

ROOT = Path(__file__).resolve().parents[2]
LOGS = ROOT / "bench" / "results" / "dataplane-logs"


def setting_available(name: str) -> bool:
    """Whether this checkout's router has setting ``name`` (e.g. ``exactly_once``)."""
    return name in RouterSettings.model_fields


@dataclass
class RouterProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    group: str
    _sock: Any = field(repr=False, default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def metric(self, name: str) -> float:
        """One unlabelled sample of the process's ``/metrics`` (0 when absent)."""
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(f"{self.url}/metrics")).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0

    async def wait_ready(self, within: float = 90.0) -> None:
        deadline = time.monotonic() + within
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"router exited with {self.proc.returncode}: see {self.log}")
                try:
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"router not ready within {within} s: see {self.log}")

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM: the router drains and commits what it holds, then exits."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def summary_lines(self) -> list[dict[str, Any]]:
        """The ``routing_summary`` log lines written so far (the last one at shutdown)."""
        lines = []
        for raw in self.log.read_text(errors="replace").splitlines():
            if '"routing_summary"' in raw:
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    continue
        return lines


def start_router(
    work: Workload, topics: TopicSettings, *, group: str | None = None, **extra: str
) -> RouterProcess:
    """Start a router process on ``topics`` (``extra``: more ``ALERTYARD_*`` variables)."""
    group = group or f"dp-router-{uuid.uuid4().hex[:8]}"
    sock = listen_socket()
    port = sock.getsockname()[1]
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"{group}-{port}.log"
    env = {
        **os.environ,
        "ALERTYARD_KAFKA_BOOTSTRAP_SERVERS": work.bootstrap,
        "ALERTYARD_REDIS_URL": work.redis_url,
        "ALERTYARD_TOPIC_ALERTS": topics.alerts,
        "ALERTYARD_TOPIC_TEAM_PREFIX": topics.team_prefix,
        "ALERTYARD_TOPIC_UNROUTED": topics.unrouted,
        "ALERTYARD_TOPIC_REJECTED": topics.rejected,
        # One decisions topic per group: a fresh group's indexer starts at the earliest
        # offset, so a shared topic would make each loop re-index the loops before it.
        "ALERTYARD_TOPIC_DECISIONS": f"{topics.decisions}.{group}",
        "ALERTYARD_TOPIC_AUDIT": topics.audit,
        "ALERTYARD_TOPIC_PARTITIONS": str(topics.partitions),
        "ALERTYARD_ROUTER_GROUP_ID": group,
        "ALERTYARD_ROUTER_PROVISION_TEAMS": json.dumps(list(TEAMS)),
        "ALERTYARD_TOKENS_HMAC_SECRET": work.tokens.hmac_secret.get_secret_value(),
        "ALERTYARD_LOG_FORMAT": "json",
        "ALERTYARD_LOG_LEVEL": "info",  # the default: routing_summary lines carry the stages
        "ALERTYARD_HTTP_FD": str(sock.fileno()),
        **extra,
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.router.main"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            pass_fds=(sock.fileno(),),
        )
    return RouterProcess(proc, port, log, group, sock)


def _admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


_COORDINATOR_NOT_READY = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


def _describe(admin: AdminClient, group: str) -> Any:
    """The group's ``ConsumerGroupDescription``; None while the group coordinator is not ready
    (a freshly started broker answers NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS)."""
    try:
        return admin.describe_consumer_groups([group])[group].result(timeout=10)
    except KafkaException as exc:
        if exc.args[0].code() in _COORDINATOR_NOT_READY:
            return None
        raise


def group_assignment(admin: AdminClient, group: str) -> dict[str, set[int]] | None:
    """Member id -> assigned partitions of a stable group (None while it rebalances)."""
    description = _describe(admin, group)
    if description is None or description.state != ConsumerGroupState.STABLE:
        return None
    owners: dict[str, set[int]] = {}
    for member in description.members:
        tps = member.assignment.topic_partitions if member.assignment else []
        owners[member.member_id] = {tp.partition for tp in tps}
    return owners


def wait_group(bootstrap: str, group: str, members: int, within: float = 90.0) -> float:
    """Block until ``group`` is stable with ``members`` members that all own partitions;
    returns that moment (``perf_counter``). Polled every 10 ms from outside the router."""
    admin = _admin(bootstrap)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        owners = group_assignment(admin, group)
        if owners is not None and len(owners) == members and all(owners.values()):
            return time.perf_counter()
        time.sleep(0.01)
    raise RuntimeError(f"group {group} not stable with {members} members within {within} s")


def wait_rebalancing(bootstrap: str, group: str, members: int, within: float = 90.0) -> float:
    """Block until ``group`` leaves the stable state or no longer has ``members`` members (a
    KIP-848 group may reconcile between two polls); returns that moment."""
    admin = _admin(bootstrap)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = _describe(admin, group)
        if found is not None and (
            found.state != ConsumerGroupState.STABLE or len(found.members) != members
        ):
            return time.perf_counter()
        time.sleep(0.01)
    raise RuntimeError(f"group {group} did not start rebalancing within {within} s")


def committed_total(reader: Consumer, topic: str, partitions: int) -> int:
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    return sum(max(tp.offset, 0) for tp in reader.committed(tps, timeout=10))


def wait_committed(
    bootstrap: str, group: str, topic: str, partitions: int, count: int, within: float = 600.0
) -> float:
    """Block until ``group`` has committed ``count`` records of ``topic`` (offsets from 0);
    returns that moment. The reader only fetches offsets: it never joins the group."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            if committed_total(reader, topic, partitions) >= count:
                return time.perf_counter()
            time.sleep(0.01)
    finally:
        reader.close()
    raise RuntimeError(f"group {group} did not commit {count} records within {within} s")
