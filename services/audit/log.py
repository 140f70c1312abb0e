"""The append-only writer: hash-chained records in size-rotated segments, signed checkpoints.

Durability: each :meth:`AuditLog.append` writes its records with one ``write`` per segment and
one ``fsync`` per touched file (plus the directory when a segment is created), so the caller may
commit Kafka offsets as soon as it returns.

Idempotency: the set of event ids and the chain head are rebuilt from the segments on
:meth:`AuditLog.open` (one pass over the log; no index file that could disagree with the log).
A torn last line left by a crash mid-write is cut off: it was never acknowledged, so Kafka
delivers that event again.

One process writes a log directory at a time (an exclusive ``flock`` on ``<dir>/.lock``).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.checkpoints import CHECKPOINT_FILE, encode_checkpoint, read_checkpoints
from services.audit.errors import LogCorruptError, LogLockedError, LogWriteFailedError
from services.audit.event_json import encode_events
from services.audit.gaps import Gap, GapTracker
from services.audit.records import GENESIS_HASH, chain_records, parse_line
from services.audit.segments import cut_torn_tail, fsync_dir, list_segments, segment_name
from shared.events import Event
from shared.logging import get_logger

__all__ = ["AppendResult", "AuditLog", "PreparedBatch"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PreparedBatch:
    """Records encoded and chained by :meth:`AuditLog.prepare`, not written yet."""

    lines: list[bytes]
    """Record lines with their newlines, seq ``first_seq`` onwards."""
    first_seq: int
    head_hash: str
    """Hash of the last line (the head once written)."""
    sequences: list[tuple[str, int]]
    """``(source, sequence)`` of each new event, for the gap tracker once written."""
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
        self._ids: set[str] = set()
        self._lock_fd: int | None = None
        self._segment_fd: int | None = None
        self._segment_size = 0
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
        if self._segment_fd is not None:
            os.close(self._segment_fd)
            self._segment_fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None
        self._ready = False

    @property
    def event_count(self) -> int:
        """Event ids logged, counting a prepared batch whose write is in flight."""
        return len(self._ids)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    @property
    def checkpoint_seq(self) -> int:
        """Seq of the newest signed checkpoint (0 when none yet)."""
        return self._checkpoint_seq

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

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
        if not self._ready:
            raise LogWriteFailedError("the log is closed or a previous write failed; restart")
        fresh: list[Event] = []
        fresh_ids: set[str] = set()
        known = self._ids
        for event in events:
            if event.id in known or event.id in fresh_ids:
                continue
            fresh_ids.add(event.id)
            fresh.append(event)
        first_seq = self._prepared_seq + 1
        bodies = encode_events(fresh, from_json=from_json)
        lines, head = chain_records(first_seq, bodies, self._prepared_hash)
        # Later batches must chain on this one and skip its ids even before it is written; if
        # its write fails the log stops taking writes (a restart rebuilds all this from disk).
        known.update(fresh_ids)
        self._prepared_seq, self._prepared_hash = first_seq + len(lines) - 1, head
        return PreparedBatch(
            lines=lines,
            first_seq=first_seq,
            head_hash=head,
            sequences=[(e.source, e.sequence) for e in fresh],
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
            gaps = self.gaps.observe_many(batch.sequences)
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
        expected = 1
        for index, (first_seq, path) in enumerate(segments):
            is_last = index == len(segments) - 1
            data = path.read_bytes()
            if is_last:
                data = cut_torn_tail(path, data)
            if first_seq != expected and data:
                raise LogCorruptError(
                    f"segment {path.name} starts at seq {first_seq}, expected {expected}; "
                    "run `alertyard audit verify`",
                )
            for line in data.splitlines():
                expected = self._replay(line, expected, path)
        if segments:
            path = segments[-1][1]
            self._segment_fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            self._segment_size = os.fstat(self._segment_fd).st_size
            if segments[-1][0] != expected and self._segment_size == 0:
                # An empty segment whose name no longer fits (cannot happen by rotation): reuse
                # it under the right name rather than leave a misnamed file.
                os.close(self._segment_fd)
                self._segment_fd = None
                path.unlink()
        self._recover_checkpoints()
        log.info(
            "audit_log_opened",
            directory=str(self.directory),
            head_seq=self.head_seq,
            segments=len(segments),
            checkpoint_seq=self._checkpoint_seq,
        )

    def _replay(self, line: bytes, expected: int, path: Path) -> int:
        parsed = parse_line(line)
        try:
            event = json.loads(line)["event"]
            event_id, source, sequence = event["id"], event["source"], int(event["sequence"])
        except (ValueError, KeyError, TypeError) as exc:
            raise LogCorruptError(
                f"record at seq {expected} in {path.name} does not parse; "
                "run `alertyard audit verify`"
            ) from exc
        if parsed is None or parsed.seq != expected:
            raise LogCorruptError(
                f"expected seq {expected} in {path.name}; run `alertyard audit verify`"
            )
        self._ids.add(event_id)
        self.gaps.observe(source, sequence)
        self.head_seq, self.head_hash = parsed.seq, parsed.stored_hash
        return expected + 1

    def _recover_checkpoints(self) -> None:
        path = self.directory / CHECKPOINT_FILE
        if path.exists():
            cut_torn_tail(path, path.read_bytes())
        checkpoints, _ = read_checkpoints(path)
        if checkpoints:
            self._checkpoint_seq = min(checkpoints[-1].seq, self.head_seq)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
