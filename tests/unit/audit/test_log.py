"""The writer: chained, rotated, durable, idempotent across restarts, one writer at a time."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from services.audit.checkpoints import CHECKPOINT_FILE, read_checkpoints
from services.audit.errors import LogCorruptError, LogLockedError, LogWriteFailedError
from services.audit.log import AuditLog
from services.audit.records import GENESIS_HASH, canonical_json
from services.audit.segments import list_segments
from services.audit.signing import PUBLIC_KEY_FILE, load_public_key
from services.audit.snapshot import SNAPSHOT_FILE
from services.audit.verify import verify_log
from tests.unit.audit._helpers import event, open_log, write_log


def _records(directory: Path) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for _, path in list_segments(directory):
        lines.extend(json.loads(line) for line in path.read_bytes().splitlines())
    return lines


def test_records_chain_and_hash_canonical_json(tmp_path: Path) -> None:
    write_log(tmp_path, 30)
    records = _records(tmp_path)
    assert [r["seq"] for r in records] == list(range(1, 31))
    prev = GENESIS_HASH
    for record in records:
        assert record["prev_hash"] == prev
        body = {k: v for k, v in record.items() if k != "hash"}
        # An auditor's re-implementation: canonical JSON without "hash", SHA-256.
        import hashlib

        assert hashlib.sha256(canonical_json(body)).hexdigest() == record["hash"]
        prev = str(record["hash"])
    assert records[0]["event"]["data"]["note"] == "héllo"


def test_segments_rotate_by_size(tmp_path: Path) -> None:
    write_log(tmp_path, 60, segment_max_bytes=4096)
    segments = list_segments(tmp_path)
    assert len(segments) > 3
    for first_seq, path in segments:
        assert path.stat().st_size <= 4096
        assert json.loads(path.read_bytes().splitlines()[0])["seq"] == first_seq


def test_redelivered_ids_are_skipped_even_after_restart(tmp_path: Path) -> None:
    audit_log, _ = open_log(tmp_path)
    first = audit_log.append([event(1), event(2), event(2)])
    assert (first.appended, first.duplicates) == (2, 1)
    audit_log.close()

    audit_log, _ = open_log(tmp_path)
    try:
        assert audit_log.head_seq == 2
        again = audit_log.append([event(1), event(2), event(3)])
        assert (again.appended, again.duplicates, again.first_seq) == (1, 2, 3)
    finally:
        audit_log.close()
    assert [r["event"]["id"] for r in _records(tmp_path)] == [
        "evt-tokens-1",
        "evt-tokens-2",
        "evt-tokens-3",
    ]


def test_close_signs_the_unsigned_tail(tmp_path: Path) -> None:
    write_log(tmp_path, 12, checkpoint_every_records=10)
    checkpoints, _ = read_checkpoints(tmp_path / CHECKPOINT_FILE)
    assert [c.seq for c in checkpoints] == [12]  # 12 unsigned after the second batch
    write_log(tmp_path / "b", 5, checkpoint_every_records=10)
    checkpoints, _ = read_checkpoints(tmp_path / "b" / CHECKPOINT_FILE)
    assert [c.seq for c in checkpoints] == [5]  # signed by close only


def test_checkpoints_every_n_records(tmp_path: Path) -> None:
    write_log(tmp_path, 25, checkpoint_every_records=10)
    checkpoints, bad = read_checkpoints(tmp_path / CHECKPOINT_FILE)
    assert bad == []
    # Batches of 7: due at 14 (14 unsigned), then at 25 (11 unsigned), so close has nothing left.
    assert [c.seq for c in checkpoints] == [14, 25]
    public_key = load_public_key(tmp_path / PUBLIC_KEY_FILE)
    assert all(c.signature_valid(public_key) for c in checkpoints)


def test_checkpoint_after_interval(tmp_path: Path) -> None:
    now = [100.0]
    audit_log, _ = open_log(
        tmp_path, checkpoint_every_records=1000, checkpoint_every_s=30.0, clock=lambda: now[0]
    )
    try:
        assert not audit_log.append([event(1)]).checkpointed  # 1 record, no time passed
        now[0] += 29.9
        assert not audit_log.maybe_checkpoint()
        now[0] += 0.1
        assert audit_log.maybe_checkpoint()  # 30 s with a record unsigned
        assert audit_log.checkpoint_seq == 1
        now[0] += 60
        assert not audit_log.maybe_checkpoint()  # nothing new to sign
        assert audit_log.append([event(2)]).checkpointed  # unsigned for 60 s already
    finally:
        audit_log.close()


def test_torn_tail_is_cut_and_the_event_can_come_again(tmp_path: Path) -> None:
    write_log(tmp_path, 5)
    _, path = list_segments(tmp_path)[-1]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])  # a crash mid-write of seq 5

    audit_log, _ = open_log(tmp_path)
    try:
        assert audit_log.head_seq == 4
        assert audit_log.append([event(5)]).appended == 1
    finally:
        audit_log.close()
    report = verify_log(tmp_path, load_public_key(tmp_path / PUBLIC_KEY_FILE))
    assert report.ok, report.problems
    assert report.head_seq == 5


def test_one_writer_per_directory(tmp_path: Path) -> None:
    audit_log, _ = open_log(tmp_path)
    try:
        with pytest.raises(LogLockedError):
            open_log(tmp_path)
    finally:
        audit_log.close()
    open_log(tmp_path)[0].close()


def _crash(audit_log: AuditLog) -> None:
    """Drop the writer's files as kill -9 would: no closing checkpoint, no snapshot."""
    for fd in (audit_log._lock_fd, audit_log._segment_fd):
        if fd is not None:
            os.close(fd)
    audit_log._lock_fd = audit_log._segment_fd = None
    audit_log._ready = False


def _delete_line(path: Path, index: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[index]
    path.write_bytes(b"".join(lines))


def test_refuses_to_append_to_a_log_it_rebuilds_with_a_broken_middle(tmp_path: Path) -> None:
    write_log(tmp_path, 30)
    (tmp_path / SNAPSHOT_FILE).unlink()  # as a log written before snapshots: read it all
    _delete_line(list_segments(tmp_path)[0][1], 1)
    with pytest.raises(LogCorruptError, match="expected seq 2"):
        open_log(tmp_path)


def test_refuses_to_append_when_the_records_after_the_snapshot_are_broken(
    tmp_path: Path,
) -> None:
    audit_log, _ = open_log(tmp_path, checkpoint_every_records=10)
    audit_log.append([event(n) for n in range(1, 11)])  # checkpoint + snapshot at 10
    audit_log.append([event(n) for n in range(11, 16)])  # after the snapshot
    _crash(audit_log)
    _delete_line(list_segments(tmp_path)[-1][1], -2)  # seq 14 gone
    with pytest.raises(LogCorruptError, match="expected seq 14"):
        open_log(tmp_path)


def test_start_up_reads_only_what_follows_the_snapshot(tmp_path: Path) -> None:
    """A broken record before the snapshot is not read at start (verify finds it)."""
    write_log(tmp_path, 30)
    _delete_line(list_segments(tmp_path)[0][1], 1)
    audit_log, _ = open_log(tmp_path)
    try:
        assert audit_log.head_seq == 30
        assert audit_log.append([event(30), event(31)]).appended == 1  # still idempotent
    finally:
        audit_log.close()
    report = verify_log(tmp_path, load_public_key(tmp_path / PUBLIC_KEY_FILE))
    assert report.first_bad_seq == 2


def test_gaps_are_rebuilt_from_disk(tmp_path: Path) -> None:
    audit_log, _ = open_log(tmp_path)
    result = audit_log.append([event(1), event(2), event(5), event(1, source="rules")])
    assert [(g.source, g.first, g.last) for g in result.gaps] == [("tokens", 3, 4)]
    audit_log.close()
    audit_log, _ = open_log(tmp_path)
    try:
        (rules, tokens) = audit_log.gaps.snapshot()
        assert (rules.source, rules.missing_count) == ("rules", 0)
        assert (tokens.missing, tokens.missing_count, tokens.last_sequence) == ([(3, 4)], 2, 5)
    finally:
        audit_log.close()


def test_a_failed_write_stops_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    audit_log, _ = open_log(tmp_path)
    audit_log.append([event(1)])

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("services.audit.log.os.fsync", disk_full)
    with pytest.raises(LogWriteFailedError):
        audit_log.append([event(2)])
    monkeypatch.undo()
    with pytest.raises(LogWriteFailedError):
        audit_log.append([event(3)])  # no appending after a torn state
    audit_log.close()

    audit_log, _ = open_log(tmp_path)  # a restart recovers from what is on disk
    try:
        again = audit_log.append([event(2), event(3)])  # Kafka redelivers the failed batch
        # Event 2 reached the file before the failing fsync: it is kept and skipped now.
        assert (again.duplicates, again.appended) == (1, 1)
    finally:
        audit_log.close()
    report = verify_log(tmp_path, load_public_key(tmp_path / PUBLIC_KEY_FILE))
    assert report.ok, report.problems
    assert report.head_seq == 3


def test_preparing_ahead_of_the_write_gives_the_same_log(tmp_path: Path) -> None:
    """The consumer prepares batch N+1 while batch N is being written."""
    sequential, _ = open_log(tmp_path / "a", checkpoint_every_records=1000)
    try:
        sequential.append([event(n) for n in range(1, 8)])
        sequential.append([event(n) for n in range(5, 15)])
    finally:
        sequential.close()
    ahead, _ = open_log(tmp_path / "b", checkpoint_every_records=1000)
    try:
        first = ahead.prepare([event(n) for n in range(1, 8)])
        second = ahead.prepare([event(n) for n in range(5, 15)])  # 5-7 are only prepared yet
        assert (second.first_seq, second.duplicates) == (8, 3)
        assert ahead.head_seq == 0  # nothing is durable before write
        assert ahead.write(first).last_seq == 7
        assert ahead.write(second).last_seq == 14
    finally:
        ahead.close()
    segments_a = [p.read_bytes() for _, p in list_segments(tmp_path / "a")]
    assert [p.read_bytes() for _, p in list_segments(tmp_path / "b")] == segments_a


def test_a_batch_written_out_of_order_is_refused(tmp_path: Path) -> None:
    audit_log, _ = open_log(tmp_path)
    try:
        first = audit_log.prepare([event(1)])
        second = audit_log.prepare([event(2)])
        with pytest.raises(LogWriteFailedError, match="starts at seq 2"):
            audit_log.write(second)
        with pytest.raises(LogWriteFailedError):
            audit_log.write(first)  # the log stopped taking writes
    finally:
        audit_log.close()
    assert list_segments(tmp_path) == []


def test_a_failed_write_refuses_the_batches_prepared_behind_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit_log, _ = open_log(tmp_path)
    audit_log.append([event(1)])
    first = audit_log.prepare([event(2), event(3)])
    second = audit_log.prepare([event(4)])

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("services.audit.log.os.fsync", disk_full)
    with pytest.raises(LogWriteFailedError):
        audit_log.write(first)
    monkeypatch.undo()
    with pytest.raises(LogWriteFailedError):
        audit_log.write(second)
    with pytest.raises(LogWriteFailedError):
        audit_log.prepare([event(5)])
    audit_log.close()

    audit_log, _ = open_log(tmp_path)  # Kafka redelivers all of it after the restart
    try:
        again = audit_log.append([event(2), event(3), event(4), event(5)])
        # 2 and 3 reached the file before the failing fsync: kept, and skipped now.
        assert (again.duplicates, again.appended, audit_log.head_seq) == (2, 2, 5)
    finally:
        audit_log.close()
    report = verify_log(tmp_path, load_public_key(tmp_path / PUBLIC_KEY_FILE))
    assert report.ok, report.problems


def test_a_reset_counter_is_logged_not_taken_for_a_redelivery(tmp_path: Path) -> None:
    audit_log, _ = open_log(tmp_path)
    audit_log.append([event(n) for n in range(1, 4)])
    audit_log.close()
    audit_log, _ = open_log(tmp_path)  # the fingerprints of 1-3 come from disk now
    try:
        reset = event(99, sequence=2)  # a new event reusing number 2
        result = audit_log.append([event(2), reset])
        assert (result.appended, result.duplicates) == (1, 1)
        (state,) = audit_log.gaps.snapshot()
        assert state.repeated == 1
    finally:
        audit_log.close()


def test_events_without_a_sequence_are_deduplicated_by_id(tmp_path: Path) -> None:
    audit_log, _ = open_log(tmp_path)
    try:
        first = audit_log.append([event(1, sequence=0), event(2, sequence=0)])
        again = audit_log.append([event(1, sequence=0), event(3, sequence=0)])
        assert (first.appended, again.appended, again.duplicates) == (2, 1, 1)
    finally:
        audit_log.close()


def test_start_up_replays_only_the_records_after_the_snapshot(tmp_path: Path) -> None:
    audit_log, _ = open_log(tmp_path, checkpoint_every_records=10)
    audit_log.append([event(n) for n in range(1, 11)])  # checkpoint + snapshot at 10
    audit_log.append([event(n) for n in range(11, 14)])
    _crash(audit_log)
    with capture_logs() as logs:
        audit_log, _ = open_log(tmp_path)
    try:
        (opened,) = [e for e in logs if e["event"] == "audit_log_opened"]
        assert (opened["from_snapshot"], opened["replayed"], opened["head_seq"]) == (10, 3, 13)
        assert audit_log.append([event(12), event(14)]).appended == 1
    finally:
        audit_log.close()


def test_a_snapshot_the_log_no_longer_matches_is_ignored(tmp_path: Path) -> None:
    write_log(tmp_path, 20)
    snapshot = json.loads((tmp_path / SNAPSHOT_FILE).read_text())
    snapshot["hash"] = "0" * 64
    (tmp_path / SNAPSHOT_FILE).write_text(json.dumps(snapshot))
    with capture_logs() as logs:
        audit_log, _ = open_log(tmp_path)
    try:
        assert [e["reason"] for e in logs if e["event"] == "audit_snapshot_ignored"] == [
            "its record is not in the log as it was"
        ]
        assert audit_log.head_seq == 20
        assert audit_log.append([event(n) for n in range(1, 22)]).appended == 1
    finally:
        audit_log.close()


def test_resume_finds_a_record_longer_than_its_read_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_log(tmp_path, 12)
    monkeypatch.setattr("services.audit.log._RECORD_WINDOW", 16)  # far shorter than a record
    with capture_logs() as logs:
        audit_log, _ = open_log(tmp_path)
    try:
        assert audit_log.head_seq == 12
        assert not [e for e in logs if e["event"] == "audit_snapshot_ignored"]
    finally:
        audit_log.close()
