"""Prove a copy of the log with nothing but the public key.

The walk recomputes every record's hash from the bytes on disk, checks that seq numbers run
1, 2, 3, ... and that each ``prev_hash`` is the previous record's hash, and compares the chain with
every signed checkpoint (whose signatures are checked first). It stops at the first broken record
and names its seq: an edited record fails its hash, a deleted or reordered one breaks the seq
run, an inserted one repeats a seq or breaks the link, and a cut tail ends the chain before the
newest checkpoint.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict

from services.audit.checkpoints import CHECKPOINT_FILE, Checkpoint, read_checkpoints
from services.audit.records import (
    GENESIS_HASH,
    HASH_KEY,
    HASH_SUFFIX_LEN,
    PREV_KEY,
    SEQ_KEY,
    hashed_bytes,
    parse_line,
    record_tail,
    stored_hash,
)
from services.audit.segments import list_segments
from services.audit.signing import key_id

__all__ = ["Problem", "Progress", "VerifyCache", "VerifyReport", "verify_log"]

Progress = Callable[[int, int], None]
"""Called as ``progress(bytes_done, bytes_total)`` after each segment."""

_HEXDIGEST = type(hashlib.sha256()).hexdigest


class Problem(BaseModel):
    """One reason the log is not what was signed."""

    model_config = ConfigDict(frozen=True)

    kind: str
    """``modified``, ``sequence``, ``broken_link``, ``malformed``, ``torn_tail``, ``truncated``,
    ``checkpoint_mismatch``, ``bad_signature``, ``bad_checkpoint_line`` or ``foreign_key``."""
    seq: int | None
    """The first bad record's seq (None for problems not tied to a record)."""
    message: str


class VerifyReport(BaseModel):
    """The outcome of one verification."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    records: int
    """Records that verified (the chain up to the first problem)."""
    head_seq: int
    head_hash: str
    segments: int
    checkpoints: int
    last_checkpoint_seq: int
    """Newest checkpoint whose signature verified and whose hash matched the chain."""
    unsigned_tail: int
    """Records after the newest verified checkpoint: intact but not yet signed."""
    first_bad_seq: int | None
    problems: list[Problem]
    key_id: str
    seconds: float


def verify_log(
    directory: Path,
    public_key: Ed25519PublicKey,
    *,
    progress: Progress | None = None,
    live: bool = False,
    cache: VerifyCache | None = None,
) -> VerifyReport:
    """Verify the log in ``directory`` (read-only; safe on a live log or an offline copy).

    ``live``: the writer may be appending right now, so a partial last line of the newest
    segment is a write in flight (left out), not a torn tail.

    ``cache``: verify incrementally. A sealed segment that verified before and whose inode,
    size and modification time are unchanged is taken as verified then (its chain state and
    the checkpoints it matched are remembered), so a request reads only the newest segment and
    any segment touched since. Without a cache (the CLI, an auditor) every byte is read.
    """
    if cache is not None:
        with cache.lock:  # one request at a time updates it
            return _verify(directory, public_key, progress, live, cache)
    return _verify(directory, public_key, progress, live, None)


def _verify(
    directory: Path,
    public_key: Ed25519PublicKey,
    progress: Progress | None,
    live: bool,
    cache: VerifyCache | None,
) -> VerifyReport:
    started = time.perf_counter()
    problems: list[Problem] = []
    expected_key = key_id(public_key)
    signed = _signed_checkpoints(directory, public_key, expected_key, problems, cache)

    segments = list_segments(directory)
    total = sum(path.stat().st_size for _, path in segments)
    done = 0
    expected, prev, broken = 1, GENESIS_HASH.encode(), False
    sha256 = hashlib.sha256
    sealed = len(segments) - 1  # segments before the newest no longer grow
    for index, (first_seq, path) in enumerate(segments):
        stamp = _stamp(path)
        reused = cache.reuse(path.name, stamp, expected, prev, signed) if cache else None
        if reused is not None:  # verified before and not touched since: trusted as it was
            count, prev = reused
            expected += count
            done += stamp[1]
            if progress is not None:
                progress(done, total)
            continue
        start_seq, start_prev = expected, prev
        data = path.read_bytes()
        lines = data.split(b"\n")
        torn = lines.pop()  # b"" when the file ends with a newline
        if data and first_seq != expected:
            broken = _fail(
                problems,
                "sequence",
                expected,
                f"segment {path.name} starts at seq {first_seq}, expected {expected}: "
                "records deleted or a segment is missing",
            )
            break
        if _segment_intact(lines, expected, prev) and all(
            checkpoint.hash.encode() == stored_hash(lines[seq - expected])
            for seq, checkpoint in signed.items()
            if expected <= seq < expected + len(lines)
        ):
            # Every record and link holds and every checkpoint in range matches.
            if lines:
                expected, prev = expected + len(lines), stored_hash(lines[-1])
                if cache is not None and index < sealed and not torn:
                    cache.remember(
                        path.name,
                        _Verified(
                            stamp,
                            start_seq,
                            start_prev,
                            len(lines),
                            prev,
                            {
                                seq: c.hash
                                for seq, c in signed.items()
                                if start_seq <= seq < expected
                            },
                        ),
                    )
            lines = []
        for line in lines:
            # Slow path, only for a segment the fast check rejected: find the first bad record.
            # Knowing the expected seq and prev_hash, the record must end with exactly these
            # bytes; one endswith() checks the structure, the seq and the link at once. Only a
            # line that fails is parsed, to say what is wrong with it.
            end = len(line) - HASH_SUFFIX_LEN
            tail = PREV_KEY + prev + SEQ_KEY + str(expected).encode() + HASH_KEY
            if not line.endswith(tail, 0, end + len(HASH_KEY)) or not line.endswith(b'"}'):
                broken = _diagnose(problems, line, expected, prev)
                break
            stored = stored_hash(line)
            if sha256(line[:end] + b"}").hexdigest().encode() != stored:
                broken = _fail(
                    problems,
                    "modified",
                    expected,
                    f"seq {expected}: hash mismatch, the record was edited",
                )
                break
            seq = expected
            checkpoint = signed.get(seq)
            if checkpoint is not None and checkpoint.hash != stored.decode("ascii", "replace"):
                broken = _fail(
                    problems,
                    "checkpoint_mismatch",
                    seq,
                    f"seq {seq}: hash differs from the signed checkpoint: records up to "
                    f"seq {seq} were rewritten",
                )
                break
            prev = stored
            expected += 1
        done += len(data)
        if progress is not None:
            progress(done, total)
        if broken:
            break
        if torn and not (live and index == len(segments) - 1):
            broken = _fail(
                problems,
                "torn_tail",
                expected,
                f"seq {expected}: incomplete last record in {path.name} (truncated tail)",
            )
            break

    head = expected - 1
    newest_signed = max(signed, default=0)
    if not broken and newest_signed > head:
        _fail(
            problems,
            "truncated",
            head + 1,
            f"the log ends at seq {head} but seq {newest_signed} was signed: "
            f"truncated tail, seq {head + 1} onwards missing",
        )
    verified_checkpoint = max((s for s in signed if s <= head), default=0)
    record_problems = [p.seq for p in problems if p.seq is not None]
    return VerifyReport(
        ok=not problems,
        records=head,
        head_seq=head,
        head_hash=prev.decode("ascii", "replace"),
        segments=len(segments),
        checkpoints=len(signed),
        last_checkpoint_seq=verified_checkpoint,
        unsigned_tail=head - verified_checkpoint,
        first_bad_seq=min(record_problems, default=None),
        problems=problems,
        key_id=expected_key,
        seconds=round(time.perf_counter() - started, 6),
    )


_Stamp = tuple[int, int, int]
"""A segment file's inode, size and modification time (ns): any rewrite changes one of them."""


def _stamp(path: Path) -> _Stamp:
    info = path.stat()
    return info.st_ino, info.st_size, info.st_mtime_ns


@dataclass(frozen=True, slots=True)
class _Verified:
    """A sealed segment as it was when it verified."""

    stamp: _Stamp
    first_seq: int
    prev_hash: bytes
    """The hash the segment's first record chained on."""
    records: int
    last_hash: bytes
    checkpoints: dict[int, str]
    """The signed checkpoints in its range then, by seq, with the hash each matched."""


class VerifyCache:
    """What earlier verifications proved about sealed segments (see :func:`verify_log`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._segments: dict[str, _Verified] = {}
        self._signatures: set[tuple[bytes, str]] = set()
        """Checkpoint lines whose signature verified (one per 1,000 records or so)."""

    def signature_known(self, checkpoint: Checkpoint) -> bool:
        return (checkpoint.signed_bytes, checkpoint.signature) in self._signatures

    def signature_verified(self, checkpoint: Checkpoint) -> None:
        self._signatures.add((checkpoint.signed_bytes, checkpoint.signature))

    def reuse(
        self,
        name: str,
        stamp: _Stamp,
        first_seq: int,
        prev_hash: bytes,
        signed: dict[int, Checkpoint],
    ) -> tuple[int, bytes] | None:
        """``(records, last hash)`` of segment ``name`` if it can be taken as verified: same
        file, same place in the chain, and every checkpoint now signed in its range one it
        matched then."""
        known = self._segments.get(name)
        if known is None or (known.stamp, known.first_seq, known.prev_hash) != (
            stamp,
            first_seq,
            prev_hash,
        ):
            return None
        end = first_seq + known.records
        for seq, checkpoint in signed.items():
            if first_seq <= seq < end and known.checkpoints.get(seq) != checkpoint.hash:
                return None
        return known.records, known.last_hash

    def remember(self, name: str, verified: _Verified) -> None:
        self._segments[name] = verified


def _signed_checkpoints(
    directory: Path,
    public_key: Ed25519PublicKey,
    expected_key: str,
    problems: list[Problem],
    cache: VerifyCache | None = None,
) -> dict[int, Checkpoint]:
    """Checkpoints whose signature verifies, by seq; every other one becomes a problem."""
    checkpoints, bad_lines = read_checkpoints(directory / CHECKPOINT_FILE)
    for number in bad_lines:
        problems.append(
            Problem(
                kind="bad_checkpoint_line",
                seq=None,
                message=f"{CHECKPOINT_FILE} line {number} is not a checkpoint",
            )
        )
    signed: dict[int, Checkpoint] = {}
    for checkpoint in checkpoints:
        if checkpoint.key_id != expected_key:
            problems.append(
                Problem(
                    kind="foreign_key",
                    seq=None,
                    message=f"checkpoint at seq {checkpoint.seq} names key {checkpoint.key_id}, "
                    f"not {expected_key}",
                )
            )
        elif not (cache is not None and cache.signature_known(checkpoint)) and not (
            checkpoint.signature_valid(public_key)
        ):
            problems.append(
                Problem(
                    kind="bad_signature",
                    seq=None,
                    message=f"checkpoint at seq {checkpoint.seq}: signature does not verify",
                )
            )
        else:
            signed[checkpoint.seq] = checkpoint
            if cache is not None:
                cache.signature_verified(checkpoint)
    return signed


def _segment_intact(lines: list[bytes], first: int, prev: bytes) -> bool:
    """True when ``lines`` are records ``first, first + 1, ...`` chained from ``prev``.

    The hot path of verification, written as C-level ``map`` calls over whole segments: each
    line must end with exactly ``,"prev_hash":"<prev>","seq":<n>,"hash":"<h>"}`` and ``h`` must
    be SHA-256 over the line up to the hash member (plus the closing brace).
    """
    if not lines:
        return True
    stored = [stored_hash(line) for line in lines]
    tails = [
        record_tail(p, seq, h)
        for p, seq, h in zip(
            [prev, *stored[:-1]], range(first, first + len(lines)), stored, strict=True
        )
    ]
    if not all(map(bytes.endswith, lines, tails)):
        return False
    bodies = [hashed_bytes(line) for line in lines]
    return list(map(str.encode, map(_HEXDIGEST, map(hashlib.sha256, bodies)))) == stored


def _diagnose(problems: list[Problem], line: bytes, expected: int, prev: bytes) -> bool:
    """Say why ``line`` is not the record ``expected`` linked to ``prev``."""
    parsed = parse_line(line)
    if parsed is None:
        return _fail(problems, "malformed", expected, f"seq {expected}: not a record")
    if parsed.seq != expected:
        how = (
            "records deleted or reordered"
            if parsed.seq > expected
            else "record inserted, duplicated or reordered"
        )
        # A seq seen again marks where two candidates for that seq exist: report the earlier.
        return _fail(
            problems,
            "sequence",
            min(parsed.seq, expected),
            f"expected seq {expected}, found {parsed.seq}: {how}",
        )
    if parsed.computed_hash != parsed.stored_hash:
        return _fail(
            problems, "modified", expected, f"seq {expected}: hash mismatch, the record was edited"
        )
    return _fail(
        problems,
        "broken_link",
        expected,
        f"seq {expected}: prev_hash does not match seq {expected - 1}: "
        "a record was replaced or inserted",
    )


def _fail(problems: list[Problem], kind: str, seq: int, message: str) -> bool:
    problems.append(Problem(kind=kind, seq=seq, message=message))
    return True
