"""A throwaway single Kafka broker (KRaft) for tests that stop and restart a broker, so the
shared test broker is never touched. Uses the jars ``scripts/stack up`` fetched into
``.stack/jars`` and the same configuration shape as that script."""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path

from tests.integration._processes import ROOT, free_port

__all__ = ["ThrowawayBroker", "stack_jars"]


def stack_jars() -> Path:
    """The Kafka jars scripts/stack uses: ``ALERTYARD_STACK_JARS``, else ``<stack dir>/jars``."""
    stack_dir = Path(os.environ.get("ALERTYARD_STACK_DIR", ROOT / ".stack"))
    return Path(os.environ.get("ALERTYARD_STACK_JARS") or stack_dir / "jars")


class ThrowawayBroker:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.controller_port = free_port()
        self._jars = stack_jars()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self.dir / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _java(self, *args: str) -> list[str]:
        return ["java", "-cp", f"{self._jars}/*", *args]

    def format(self) -> None:
        if not (self._jars / ".complete").exists():
            raise RuntimeError(f"no Kafka jars in {self._jars}: run scripts/stack up first")
        self.dir.mkdir(parents=True, exist_ok=True)
        properties = self.dir / "server.properties"
        properties.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.dir / 'data'}",
                    "num.partitions=3",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "",
                ]
            )
        )
        subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                _cluster_id(),
                "-c",
                str(properties),
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        with self._log.open("ab") as out:
            self._proc = subprocess.Popen(
                [
                    "java",
                    "-Xms128m",
                    "-Xmx512m",
                    "-XX:+UseG1GC",
                    "-Djava.awt.headless=true",
                    f"-Dlog4j2.configurationFile={ROOT / 'stack' / 'log4j2.properties'}",
                    f"-Dkafka.logs.file={self._log}",
                    "-cp",
                    f"{self._jars}/*",
                    "kafka.Kafka",
                    str(self.dir / "server.properties"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> None:
        """SIGKILL: the broker vanishes as in a crash (its data stays for the restart)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


def _cluster_id() -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64 without padding, never starting
    with "-" (StorageTool would read it as an option; Kafka's own Uuid.randomUuid skips those)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate
