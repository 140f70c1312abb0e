"""The append-only writer: hash-chained records in size-rotated segments, signed checkpoints.

Durability: each :meth:`AuditLog.append` writes its records with one ``write`` per segment and
one ``fsync`` per touched file (plus the directory when a segment is created), so the caller may
commit Kafka offsets as soon as it returns.

Idempotency: an event is known by its source's sequence number (:mod:`services.audit.seen`),
so no event id is held in memory. :meth:`AuditLog.open` starts from the snapshot written at the
last checkpoint (:mod:`services.audit.snapshot`) and replays only the records after it: start-up
time and memory do not grow with the log. Without a usable snapshot (a log written before
snapshots existed, or one that no longer matches the log) it rebuilds from the whole log once.
A torn last line left by a crash mid-write is cut off: it was never acknowledged, so Kafka
delivers that event again.

One process writes a log directory at a time (an exclusive ``flock`` on ``<dir>/.lock``).
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.checkpoints import CHECKPOINT_FILE, encode_checkpoint, read_checkpoints
from services.audit.errors import LogCorruptError, LogLockedError, LogWriteFailedError
from services.audit.event_json import encode_events
from services.audit.gaps import Gap, GapTracker
from services.audit.records import GENESIS_HASH, chain_records, parse_line
from services.audit.seen import Identity, SeenEvents, fingerprint
from services.audit.segments import (
    cut_torn_tail,
    fsync_dir,
    list_segments,
    read_from,
    read_window,
    segment_name,
)
from services.audit.snapshot import Snapshot, read_snapshot, write_snapshot
from shared.events import Event
from shared.logging import get_logger

__all__ = ["AppendResult", "AuditLog", "PreparedBatch"]

log = get_logger(__name__)

_RECORD_WINDOW = 4 * 1024 * 1024
"""Bytes read back from the snapshot's position to find its record (records stay far smaller:
a Kafka message is at most about 1 MiB by default)."""


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """Records encoded and chained by :meth:`AuditLog.prepare`, not written yet."""

    lines: list[bytes]
    """Record lines with their newlines, seq ``first_seq`` onwards."""
    first_seq: int
    head_hash: str
    """Hash of the last line (the head once written)."""
    identities: list[Identity]
    """``(source, sequence, id, fingerprint)`` of each new event, recorded once written."""
    duplicates: int


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one durable append did."""

    appended: int
    duplicates: int
    """Events skipped because their id is already in the log (redelivery)."""
    first_seq: int | None
    last_seq: int | None
    gaps: list[Gap] = field(default_factory=list)
    """Sequence gaps these events revealed."""
    checkpointed: bool = False


class AuditLog:
    """Appends events to the chain. Not thread-safe: one task appends at a time."""

    def __init__(
        self,
        directory: Path,
        *,
        signing_key: Ed25519PrivateKey,
        segment_max_bytes: int = 64 * 1024 * 1024,
        checkpoint_every_records: int = 1000,
        checkpoint_every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self._clock = clock
        """Seconds on a monotonic scale; tests pass their own to drive time checkpoints."""
        self._key = signing_key
        self._segment_max_bytes = segment_max_bytes
        self._checkpoint_every_records = checkpoint_every_records
        self._checkpoint_every_s = checkpoint_every_s
        self.head_seq = 0
        self.head_hash = GENESIS_HASH
        self._prepared_seq = 0
        self._prepared_hash = GENESIS_HASH
        """The head after every prepared batch (ahead of ``head_seq`` while one is written)."""
        self.gaps = GapTracker()
        self._seen: SeenEvents | None = None
        self._lock_fd: int | None = None
        self._segment_fd: int | None = None
        self._segment_first = 0
        self._segment_size = 0
        self._snapshot_seq = 0
        self._checkpoint_seq = 0
        self._checkpoint_at = clock()
        self._ready = False

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        signing_key: Ed25519PrivateKey,
        segment_max_bytes: int = 64 * 1024 * 1024,
        checkpoint_every_records: int = 1000,
        checkpoint_every_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> Self:
        """Lock ``directory`` and rebuild the head, the id set and the gaps from disk."""
        audit_log = cls(
            directory,
            signing_key=signing_key,
            segment_max_bytes=segment_max_bytes,
            checkpoint_every_records=checkpoint_every_records,
            checkpoint_every_s=checkpoint_every_s,
            clock=clock,
        )
        directory.mkdir(parents=True, exist_ok=True)
        audit_log._lock()
        try:
            audit_log._seen = SeenEvents(directory, audit_log.gaps)
            audit_log._recover()
            audit_log._prepared_seq, audit_log._prepared_hash = (
                audit_log.head_seq,
                audit_log.head_hash,
            )
            audit_log._ready = True
        except BaseException:
            audit_log.close()
            raise
        return audit_log

    def close(self) -> None:
        """Checkpoint what is unsigned, then release the files and the lock."""
        if self._ready and self.head_seq > self._checkpoint_seq:
            self.checkpoint()
        elif self._ready and self.head_seq > self._snapshot_seq:
            self._snapshot()
        if self._seen is not None:
            self._seen.close()
        if self._segment_fd is not None:
            os.close(self._segment_fd)
            self._segment_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None
        self._ready = False

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    @property
    def checkpoint_seq(self) -> int:
        """Seq of the newest signed checkpoint (0 when none yet)."""
        return self._checkpoint_seq

    # -- writing -----------------------------------------------------------------------------

    def append(self, events: Sequence[Event], *, from_json: bool = False) -> AppendResult:
        """Chain ``events`` (skipping ids already logged), write them and fsync before returning.

        ``from_json``: the events were validated from JSON (the consumer's case), which lets the
        encoder take its direct path (see :func:`services.audit.event_json.encode_events`).
        """
        return self.write(self.prepare(events, from_json=from_json))

    def prepare(self, events: Sequence[Event], *, from_json: bool = False) -> PreparedBatch:
        """The first half of :meth:`append`, pure CPU: skip known ids, encode and chain after
        everything prepared so far. Nothing is written; write batches in the order prepared.

        Splitting lets the consumer prepare batch N+1 while batch N is written and fsynced in a
        worker thread. Everything that can fail on the events' content fails here, before a byte
        is written.
        """
        if not self._ready or self._seen is None:
            raise LogWriteFailedError("the log is closed or a previous write failed; restart")
        first_seq = self._prepared_seq + 1
        # Later batches must chain on this one and skip its events even before it is written;
        # if its write fails the log stops taking writes (a restart rebuilds this from disk).
        fresh, identities = self._seen.fresh(events)
        bodies = encode_events(fresh, from_json=from_json)
        lines, head = chain_records(first_seq, bodies, self._prepared_hash)
        self._prepared_seq, self._prepared_hash = first_seq + len(lines) - 1, head
        return PreparedBatch(
            lines=lines,
            first_seq=first_seq,
            head_hash=head,
            identities=identities,
            duplicates=len(events) - len(fresh),
        )

    def write(self, batch: PreparedBatch) -> AppendResult:
        """The second half of :meth:`append`, I/O: write a prepared batch, fsync, then sign the
        head if a checkpoint is due. Durable when it returns."""
        if not self._ready:
            raise LogWriteFailedError("the log is closed or a previous write failed; restart")
        lines = batch.lines
        gaps: list[Gap] = []
        if lines:
            if batch.first_seq != self.head_seq + 1:
                self._ready = False  # a caller bug; refuse rather than break the chain
                raise LogWriteFailedError(
                    f"batch starts at seq {batch.first_seq}, the log at {self.head_seq + 1}"
                )
            try:
                self._write(lines, batch.first_seq)
            except OSError as exc:
                # Part of the batch may be on disk: stop appending after a torn state; a restart
                # rebuilds the head from disk and Kafka redelivers the uncommitted batch.
                self._ready = False
                raise LogWriteFailedError(
                    f"writing the log failed ({exc.__class__.__name__}); restart to recover"
                ) from exc
            self.head_seq, self.head_hash = batch.first_seq + len(lines) - 1, batch.head_hash
            gaps = self.gaps.observe_many((i[0], i[1]) for i in batch.identities)
            assert self._seen is not None  # set by open()
            self._seen.written(batch.identities)
        checkpointed = self.maybe_checkpoint()
        return AppendResult(
            appended=len(lines),
            duplicates=batch.duplicates,
            first_seq=batch.first_seq if lines else None,
            last_seq=self.head_seq if lines else None,
            gaps=gaps,
            checkpointed=checkpointed,
        )

    def maybe_checkpoint(self) -> bool:
        """Sign the head when N records or T seconds have passed since the last checkpoint."""
        unsigned = self.head_seq - self._checkpoint_seq
        if unsigned <= 0:
            return False
        due = self._clock() - self._checkpoint_at >= self._checkpoint_every_s
        if unsigned >= self._checkpoint_every_records or due:
            self.checkpoint()
            return True
        return False

    def checkpoint(self) -> None:
        """Append a signed ``(head seq, head hash)`` checkpoint and fsync it."""
        path = self.directory / CHECKPOINT_FILE
        created = not path.exists()
        line = encode_checkpoint(self._key, seq=self.head_seq, head_hash=self.head_hash)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                _write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                fsync_dir(self.directory)
        except OSError as exc:
            self._ready = False  # a torn checkpoint line is cut at the next start
            raise LogWriteFailedError(
                f"writing a checkpoint failed ({exc.__class__.__name__}); restart to recover"
            ) from exc
        self._checkpoint_seq = self.head_seq
        self._checkpoint_at = self._clock()
        self._snapshot()

    def _snapshot(self) -> None:
        """Record where the head is (see :mod:`services.audit.snapshot`), after making the
        index slots it relies on durable. A failure here costs only a longer next start."""
        if self._seen is None or self.head_seq == 0:
            return
        try:
            self._seen.sync()
            write_snapshot(
                self.directory,
                Snapshot(
                    seq=self.head_seq,
                    hash=self.head_hash,
                    segment=self._segment_first,
                    end=self._segment_size,
                    sources=self.gaps.export(),
                ),
            )
        except OSError as exc:
            log.warning("audit_snapshot_failed", error=exc.__class__.__name__)
            return
        self._snapshot_seq = self.head_seq

    def _write(self, lines: list[bytes], first_seq: int) -> None:
        buffer: list[bytes] = []
        size = 0
        for offset, line in enumerate(lines):
            if self._segment_fd is None or (
                self._segment_size + size > 0
                and self._segment_size + size + len(line) > self._segment_max_bytes
            ):
                self._flush(buffer)
                buffer, size = [], 0
                self._rotate(first_seq + offset)
            buffer.append(line)
            size += len(line)
        self._flush(buffer)

    def _flush(self, buffer: list[bytes]) -> None:
        if not buffer or self._segment_fd is None:
            return
        data = b"".join(buffer)
        _write_all(self._segment_fd, data)
        os.fsync(self._segment_fd)
        self._segment_size += len(data)

    def _rotate(self, first_seq: int) -> None:
        """Close the current segment (already fsynced) and start one whose first record is
        ``first_seq``; the directory is fsynced so the new file survives a crash."""
        if self._segment_fd is not None:
            os.close(self._segment_fd)
        path = self.directory / segment_name(first_seq)
        self._segment_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._segment_first = first_seq
        self._segment_size = os.fstat(self._segment_fd).st_size
        fsync_dir(self.directory)
        log.info("audit_segment_opened", segment=path.name, first_seq=first_seq)

    # -- recovery ----------------------------------------------------------------------------

    def _lock(self) -> None:
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise LogLockedError(
                f"another process writes to {self.directory}", directory=str(self.directory)
            ) from exc
        self._lock_fd = fd

    def _recover(self) -> None:
        segments = list_segments(self.directory)
        snapshot = read_snapshot(self.directory)
        replay = self._resume(segments, snapshot) if snapshot is not None else None
        resumed_from = snapshot.seq if snapshot is not None and replay is not None else 0
        if replay is None:  # no usable snapshot: rebuild from the whole log
            assert self._seen is not None  # set by open()
            self._seen.reset()
            self.gaps = GapTracker()
            self._seen.use(self.gaps)
            self.head_seq, self.head_hash = 0, GENESIS_HASH
            replay = [(first, path, 0) for first, path in segments]
        expected = self.head_seq + 1
        replayed = 0
        for first_seq, path, start in replay:
            data = read_from(path, start)  # a resumed segment: only what follows the snapshot
            if path == segments[-1][1]:
                data = cut_torn_tail(path, data, start)
            if first_seq != expected and data and start == 0:
                raise LogCorruptError(
                    f"segment {path.name} starts at seq {first_seq}, expected {expected}; "
                    "run `alertyard audit verify`",
                )
            lines = data.splitlines()
            expected = self._replay(lines, expected, path)
            replayed += len(lines)
        if segments:
            first_seq, path = segments[-1]
            self._segment_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._segment_first = first_seq
            self._segment_size = os.fstat(self._segment_fd).st_size
            if first_seq != expected and self._segment_size == 0:
                # An empty segment whose name no longer fits (cannot happen by rotation): reuse
                # it under the right name rather than leave a misnamed file.
                os.close(self._segment_fd)
                self._segment_fd = None
                path.unlink()
        self._recover_checkpoints()
        self._snapshot_seq = resumed_from
        log.info(
            "audit_log_opened",
            directory=str(self.directory),
            head_seq=self.head_seq,
            segments=len(segments),
            checkpoint_seq=self._checkpoint_seq,
            replayed=replayed,
            from_snapshot=resumed_from,
        )

    def _resume(
        self, segments: list[tuple[int, Path]], snapshot: Snapshot
    ) -> list[tuple[int, Path, int]] | None:
        """Start from ``snapshot``: the segments to replay, each with the byte offset to start
        at; None when the log no longer holds the snapshot's record as it was."""
        at = next((i for i, (first, _) in enumerate(segments) if first == snapshot.segment), None)
        if at is None:
            _distrust(snapshot, "its segment is missing")
            return None
        first_seq, path = segments[at]
        start, data = read_window(path, snapshot.end, _RECORD_WINDOW)
        begins = data.rfind(b"\n", 0, len(data) - 1) + 1
        if begins == 0 and start > 0:  # a record longer than the window: read it all
            start, data = read_window(path, snapshot.end, snapshot.end)
            begins = data.rfind(b"\n", 0, len(data) - 1) + 1
        line = data[begins:-1]
        parsed = parse_line(line) if data.endswith(b"\n") else None
        if parsed is None or (parsed.seq, parsed.stored_hash) != (snapshot.seq, snapshot.hash):
            _distrust(snapshot, "its record is not in the log as it was")
            return None
        try:
            gaps = GapTracker.restore(snapshot.sources)
        except (ValueError, TypeError, KeyError, AttributeError):
            _distrust(snapshot, "its sequence state does not parse")
            return None
        assert self._seen is not None  # set by open()
        self.gaps = gaps
        self._seen.use(gaps)
        self.head_seq, self.head_hash = snapshot.seq, snapshot.hash
        return [(first_seq, path, snapshot.end)] + [(f, p, 0) for f, p in segments[at + 1 :]]

    def _replay(self, lines: list[bytes], expected: int, path: Path) -> int:
        """Check and take in records ``expected, expected + 1, ...``; returns the next seq."""
        assert self._seen is not None  # set by open()
        identities: list[Identity] = []
        for line in lines:
            parsed = parse_line(line)
            try:
                event = orjson.loads(line)["event"]
                event_id, source, sequence = event["id"], event["source"], int(event["sequence"])
            except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
                raise LogCorruptError(
                    f"record at seq {expected} in {path.name} does not parse; "
                    "run `alertyard audit verify`"
                ) from exc
            if parsed is None or parsed.seq != expected:
                raise LogCorruptError(
                    f"expected seq {expected} in {path.name}; run `alertyard audit verify`"
                )
            identities.append((source, sequence, event_id, fingerprint(event_id)))
            self.head_seq, self.head_hash = parsed.seq, parsed.stored_hash
            expected += 1
        self.gaps.observe_many((i[0], i[1]) for i in identities)
        self._seen.written(identities)
        return expected

    def _recover_checkpoints(self) -> None:
        path = self.directory / CHECKPOINT_FILE
        if path.exists():
            cut_torn_tail(path, path.read_bytes())
        checkpoints, _ = read_checkpoints(path)
        if checkpoints:
            self._checkpoint_seq = min(checkpoints[-1].seq, self.head_seq)


def _distrust(snapshot: Snapshot, why: str) -> None:
    log.warning("audit_snapshot_ignored", seq=snapshot.seq, reason=why)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
