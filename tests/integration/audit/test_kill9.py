"""kill -9 of ``alertyard serve audit`` mid-stream, twice: no loss, no duplicate, chain verifies."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from services.audit.query import AuditQuery, query_log
from services.audit.segments import complete_lines, list_segments
from services.audit.signing import PUBLIC_KEY_FILE, load_public_key
from services.audit.verify import verify_log
from services.tokens.testing import test_settings
from shared.events import Actor, Event
from shared.kafka import ensure_topics, make_producer
from tests._waiting import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.redis, pytest.mark.slow]

SOURCES = ("tokens", "rules", "users")
PER_SOURCE = 1000
TOTAL = PER_SOURCE * len(SOURCES)


def _records_on_disk(log_dir: Path) -> int:
    return sum(len(complete_lines(p.read_bytes())) for _, p in list_segments(log_dir))


class AuditProcess:
    def __init__(self, env: dict[str, str], log_file: Path) -> None:
        self._env = env
        self._log_file = log_file
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cli = Path(sys.executable).parent / "alertyard"
        with self._log_file.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(cli), "serve", "audit"], env=self._env, stdout=out, stderr=out
            )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)

    def stop_quietly(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(timeout=10)


async def _wait_for_records(log_dir: Path, at_least: int, proc: AuditProcess) -> int:
    async with asyncio.timeout(60):
        while (count := _records_on_disk(log_dir)) < at_least:
            assert proc.proc is not None
            assert proc.proc.poll() is None, "the audit process died"
            await asyncio.sleep(0.05)
    return count


def _starts(log_file: Path) -> int:
    return log_file.read_bytes().count(b'"event": "audit_started"')


async def _wait_until_started(log_file: Path, starts: int, proc: AuditProcess) -> None:
    """Until the log holds ``starts`` ``audit_started`` lines: a SIGTERM before the service set
    up its handlers (still importing) ends it by the signal's default action, not a drain."""

    def started() -> bool:
        assert proc.proc is not None
        assert proc.proc.poll() is None, "the audit process died"
        return _starts(log_file) >= starts

    await eventually(started, what=f"{starts} audit starts", every=0.05)


async def test_kill_dash_nine_mid_stream_loses_and_duplicates_nothing(
    kafka_bootstrap: str, redis_url: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    topic = unique("audit-kill")
    await ensure_topics(kafka_bootstrap, [topic], partitions=3)
    log_dir = tmp_path / "audit"
    env = {
        **os.environ,
        "ALERTYARD_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ALERTYARD_REDIS_URL": redis_url,
        "ALERTYARD_TOPIC_AUDIT": topic,
        "ALERTYARD_TOPIC_PARTITIONS": "3",
        "ALERTYARD_AUDIT_LOG_DIR": str(log_dir),
        "ALERTYARD_AUDIT_GROUP_ID": unique("audit-kill-g"),
        "ALERTYARD_AUDIT_HTTP_PORT": "0",  # bound by the service itself; the test never calls it
        "ALERTYARD_AUDIT_BATCH_MAX_RECORDS": "40",
        "ALERTYARD_AUDIT_CHECKPOINT_EVERY_RECORDS": "200",
        "ALERTYARD_AUDIT_SEGMENT_MAX_BYTES": "65536",
        "ALERTYARD_LOG_FORMAT": "json",
        "ALERTYARD_TOKENS_HMAC_SECRET": test_settings(redis_url).hmac_secret.get_secret_value(),
    }
    events = [
        Event(
            id=f"{source}-{n}",
            type="token.rotated",
            source=source,
            sequence=n,
            actor=Actor(user_id="u-1", token_id="tok-1"),
            subject=f"token/{source}-{n}",
        )
        for n in range(1, PER_SOURCE + 1)
        for source in SOURCES
    ]

    producer = make_producer(kafka_bootstrap)
    await producer.start()

    async def stream() -> None:
        # A live stream: events keep arriving while the service is killed and restarted.
        for start in range(0, TOTAL, 100):
            chunk = events[start : start + 100]
            futures = [
                await producer.send(topic, key=e.source.encode(), value=e.to_bytes()) for e in chunk
            ]
            await asyncio.gather(*futures)
            await asyncio.sleep(0.02)

    service = AuditProcess(env, tmp_path / "audit.out")
    streaming = asyncio.create_task(stream())
    try:
        service.start()
        seen = await _wait_for_records(log_dir, 400, service)
        service.kill9()
        service.start()
        await _wait_for_records(log_dir, seen + 600, service)
        service.kill9()
        service.start()
        await streaming
        await _wait_for_records(log_dir, TOTAL, service)
        # The records may all be on disk before the third process has started.
        await _wait_until_started(tmp_path / "audit.out", 3, service)
        assert service.terminate() == 0
    finally:
        service.stop_quietly()
        streaming.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streaming
        await producer.stop()

    page = query_log(log_dir, AuditQuery(), limit=TOTAL + 10)
    ids = [r.event.id for r in page.records]
    assert len(ids) == TOTAL, "lost or duplicated events"
    assert set(ids) == {e.id for e in events}
    by_source: dict[str, list[int]] = defaultdict(list)
    for record in page.records:
        by_source[record.event.source].append(record.event.sequence)
    assert all(seqs == list(range(1, PER_SOURCE + 1)) for seqs in by_source.values())

    report = verify_log(log_dir, load_public_key(log_dir / PUBLIC_KEY_FILE))
    assert report.ok, report.problems
    assert (report.head_seq, report.unsigned_tail) == (TOTAL, 0)  # SIGTERM signs the tail
