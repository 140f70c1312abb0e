"""Verification with only the public key, and each way of tampering it must catch."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.checkpoints import CHECKPOINT_FILE
from services.audit.records import encode_record
from services.audit.segments import list_segments
from services.audit.signing import PUBLIC_KEY_FILE, load_public_key
from services.audit.verify import VerifyCache, VerifyReport, verify_log
from tests.unit.audit._helpers import write_log

COUNT = 60


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    write_log(tmp_path, COUNT, segment_max_bytes=4096, checkpoint_every_records=10)
    return tmp_path


def _verify(directory: Path) -> VerifyReport:
    return verify_log(directory, load_public_key(directory / PUBLIC_KEY_FILE))


def _locate(directory: Path, seq: int) -> tuple[Path, list[bytes], int]:
    """The segment holding ``seq``, its lines (with newlines) and the line's index."""
    for first_seq, path in reversed(list_segments(directory)):
        if first_seq <= seq:
            return path, path.read_bytes().splitlines(keepends=True), seq - first_seq
    raise AssertionError(seq)


def _first_problem(report: VerifyReport) -> tuple[str, int | None]:
    assert not report.ok
    return report.problems[0].kind, report.first_bad_seq


def test_an_intact_log_verifies(log_dir: Path) -> None:
    report = _verify(log_dir)
    assert report.ok, report.problems
    assert (report.records, report.head_seq, report.unsigned_tail) == (COUNT, COUNT, 0)
    assert report.checkpoints >= 5
    assert report.segments == len(list_segments(log_dir))


def test_modified_record(log_dir: Path) -> None:
    path, lines, index = _locate(log_dir, 23)
    lines[index] = lines[index].replace(b"user-", b"usr-x")
    path.write_bytes(b"".join(lines))
    assert _first_problem(_verify(log_dir)) == ("modified", 23)
    assert "seq 23" in _verify(log_dir).problems[0].message


def test_deleted_record(log_dir: Path) -> None:
    path, lines, index = _locate(log_dir, 31)
    del lines[index]
    path.write_bytes(b"".join(lines))
    assert _first_problem(_verify(log_dir)) == ("sequence", 31)


def test_deleted_first_record_of_a_segment(log_dir: Path) -> None:
    first_seq, path = list_segments(log_dir)[2]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[1:]))
    assert _first_problem(_verify(log_dir)) == ("sequence", first_seq)


def _insert_forgery(directory: Path, seq: int) -> None:
    path, lines, index = _locate(directory, seq)
    forged = json.loads(lines[index])
    forged["event"]["subject"] = "token/forged"
    line, _ = encode_record(seq, forged["event"], forged["prev_hash"])  # a well-formed record
    lines.insert(index, line)
    path.write_bytes(b"".join(lines))


def test_inserted_record(log_dir: Path) -> None:
    _insert_forgery(log_dir, 40)
    # The forgery links to seq 39 like the real seq 40 does, which then shows up again.
    assert _first_problem(_verify(log_dir)) == ("sequence", 40)


def test_inserted_record_at_a_checkpoint(log_dir: Path) -> None:
    _insert_forgery(log_dir, 42)  # batches of 7, checkpoint every 10: seq 42 is signed
    assert _first_problem(_verify(log_dir)) == ("checkpoint_mismatch", 42)


def test_inserted_duplicate(log_dir: Path) -> None:
    path, lines, index = _locate(log_dir, 17)
    lines.insert(index + 1, lines[index])
    path.write_bytes(b"".join(lines))
    assert _first_problem(_verify(log_dir)) == ("sequence", 17)
    assert "expected seq 18, found 17" in _verify(log_dir).problems[0].message


def test_reordered_records(log_dir: Path) -> None:
    path, lines, index = _locate(log_dir, 44)
    lines[index], lines[index + 1] = lines[index + 1], lines[index]
    path.write_bytes(b"".join(lines))
    assert _first_problem(_verify(log_dir)) == ("sequence", 44)


def test_truncated_tail(log_dir: Path) -> None:
    path, lines, index = _locate(log_dir, 55)
    path.write_bytes(b"".join(lines[:index]))
    for _, later in list_segments(log_dir):
        if later.name > path.name:
            later.unlink()
    kind, seq = _first_problem(_verify(log_dir))
    assert (kind, seq) == ("truncated", 55)
    assert "seq 60 was signed" in _verify(log_dir).problems[0].message


def test_torn_last_record(log_dir: Path) -> None:
    path, lines, _ = _locate(log_dir, COUNT)
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:50])
    assert _first_problem(_verify(log_dir)) == ("torn_tail", COUNT)
    # On a live log the same bytes are a write in flight: verified up to the record before.
    live = verify_log(log_dir, load_public_key(log_dir / PUBLIC_KEY_FILE), live=True)
    assert (live.head_seq, live.problems[0].kind) == (COUNT - 1, "truncated")  # 60 was signed


def test_rewritten_history_is_caught_by_the_checkpoints(log_dir: Path) -> None:
    """An attacker re-chains everything from seq 12 on: every hash is consistent again."""
    records: list[Any] = []
    for _, path in list_segments(log_dir):
        records.extend(json.loads(line) for line in path.read_bytes().splitlines())
        path.unlink()
    prev = records[10]["hash"]
    out = b"".join(encode_record(r["seq"], r["event"], r["prev_hash"])[0] for r in records[:11])
    for record in records[11:]:
        record["event"]["subject"] = "token/rewritten"
        line, prev = encode_record(record["seq"], record["event"], prev)
        out += line
    (log_dir / "segment-00000000000000000001.jsonl").write_bytes(out)
    kind, seq = _first_problem(_verify(log_dir))
    assert kind == "checkpoint_mismatch"
    assert seq == 14  # checkpoints at 14, 28, ...: the first one after the rewrite


def test_forged_checkpoint_signature(log_dir: Path) -> None:
    path = log_dir / CHECKPOINT_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    doc = json.loads(lines[1])
    doc["seq"] = doc["seq"] - 1
    lines[1] = json.dumps(doc).encode() + b"\n"
    path.write_bytes(b"".join(lines))
    report = _verify(log_dir)
    assert [p.kind for p in report.problems] == ["bad_signature"]


def test_another_public_key_verifies_nothing(log_dir: Path) -> None:
    stranger = Ed25519PrivateKey.generate().public_key()
    report = verify_log(log_dir, stranger)
    assert not report.ok
    assert {p.kind for p in report.problems} == {"foreign_key"}


def test_progress_reports_every_segment(log_dir: Path) -> None:
    seen: list[tuple[int, int]] = []
    verify_log(
        log_dir,
        load_public_key(log_dir / PUBLIC_KEY_FILE),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert len(seen) == len(list_segments(log_dir))
    assert seen[-1][0] == seen[-1][1]


def test_empty_log_verifies(tmp_path: Path) -> None:
    write_log(tmp_path, 0)
    report = _verify(tmp_path)
    assert report.ok
    assert report.records == 0


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the segment files read from now on."""
    names: list[str] = []
    real = Path.read_bytes

    def counting(self: Path) -> bytes:
        if self.name.startswith("segment-"):
            names.append(self.name)
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", counting)
    return names


def test_incremental_verify_reads_only_the_newest_and_changed_segments(
    log_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = VerifyCache()
    public_key = load_public_key(log_dir / PUBLIC_KEY_FILE)
    first = verify_log(log_dir, public_key, cache=cache)
    assert first.ok, first.problems
    segments = [path.name for _, path in list_segments(log_dir)]
    reads = _reads(monkeypatch)
    again = verify_log(log_dir, public_key, cache=cache)
    assert again.model_dump(exclude={"seconds"}) == first.model_dump(exclude={"seconds"})
    assert reads == [segments[-1]]  # the sealed ones verified before are not read again

    path, lines, index = _locate(log_dir, 5)
    lines[index] = lines[index].replace(b"token 5", b"token 6")  # a sealed segment edited
    path.write_bytes(b"".join(lines))
    reads.clear()
    tampered = verify_log(log_dir, public_key, cache=cache)
    assert _first_problem(tampered) == ("modified", 5)
    assert reads[0] == path.name


def test_incremental_verify_trusts_a_segment_whose_stamp_is_kept(log_dir: Path) -> None:
    """The documented limit: an edit that keeps inode, size and mtime passes an incremental
    verify; a full one (the CLI, ``?full=true``) still finds it."""
    cache = VerifyCache()
    public_key = load_public_key(log_dir / PUBLIC_KEY_FILE)
    assert verify_log(log_dir, public_key, cache=cache).ok
    path, lines, index = _locate(log_dir, 5)
    info = path.stat()
    lines[index] = lines[index].replace(b"token 5", b"token 6")
    with path.open("r+b") as handle:  # same inode, same size
        handle.write(b"".join(lines))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    assert verify_log(log_dir, public_key, cache=cache).ok
    assert _first_problem(verify_log(log_dir, public_key)) == ("modified", 5)
