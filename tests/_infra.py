"""Where the real Kafka and Redis for tests come from.

Order: ``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` when set; else testcontainers when a Docker
engine answers; else the project's own local stack (``scripts/stack up``). Never a fake.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from shared.redis import with_database

ROOT = Path(__file__).resolve().parents[1]
TEST_REDIS_DB: Final = 14


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _stack_env() -> dict[str, str]:
    """Start the local stack (idempotent) and return the variables it prints."""
    done = subprocess.run(
        [str(ROOT / "scripts" / "stack"), "up"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/stack up failed:\n{done.stderr}")
    env: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
    return env


@contextmanager
def kafka_bootstrap_servers() -> Iterator[str]:
    if url := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield url
    elif docker_available():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:4.1.1").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
    else:
        yield _stack_env()["KAFKA_BOOTSTRAP_SERVERS"]


@contextmanager
def redis_url() -> Iterator[str]:
    """Database 14 of the Redis server to test against: tests flush their database, and
    ``make run`` keeps the demo in database 0 (and the benchmarks use 15) of the same server."""
    if url := os.environ.get("REDIS_URL"):
        yield with_database(url, TEST_REDIS_DB)
    elif docker_available():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7") as redis:
            host, port = redis.get_container_host_ip(), redis.get_exposed_port(6379)
            yield f"redis://{host}:{port}/{TEST_REDIS_DB}"
    else:
        yield with_database(_stack_env()["REDIS_URL"], TEST_REDIS_DB)
