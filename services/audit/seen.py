"""Which events the log already holds, without every event id in memory.

The outbox numbers each source's events 1, 2, 3, ... atomically with the change, so
``(source, sequence)`` names an event, and the gap tracker already knows which numbers arrived
(everything up to the highest, minus the open gaps). What it cannot tell apart is a redelivery
(same event again) from a reset counter (a new event reusing a number). For that, each
number's 8-byte fingerprint of the event id sits on disk at offset ``(sequence - 1) * 8`` of
``index/seq-<source hash>.bin`` (a sparse file): one ``pread`` answers, only for numbers the
tracker says arrived. Memory stays constant whatever the log's length.

Events without a sequence (0: never staged through an outbox; none of alertyard's own) or with
one beyond :data:`MAX_INDEXED_SEQUENCE` are deduplicated by id against the last
:data:`UNSEQUENCED_WINDOW` of them only.

The files are a cache of the log: written after each durable batch, fsynced before the
writer's snapshot (:mod:`services.audit.snapshot`) names a seq, and rebuilt from the log after
that seq at start-up.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from cachetools import LRUCache

from services.audit.gaps import GapTracker
from shared.events import Event

__all__ = [
    "INDEX_DIR",
    "MAX_INDEXED_SEQUENCE",
    "UNSEQUENCED_WINDOW",
    "Identity",
    "SeenEvents",
    "fingerprint",
]

INDEX_DIR: Final = "index"
MAX_INDEXED_SEQUENCE: Final = 2**32
"""Beyond this a sequence number is not indexed (a sparse file of at most 32 GiB per source)."""
UNSEQUENCED_WINDOW: Final = 100_000
_SLOT: Final = 8
_EMPTY: Final = b"\0" * _SLOT

Identity = tuple[str, int, str, bytes]
"""``(source, sequence, event id, fingerprint)`` of an event chosen for the log."""


def fingerprint(event_id: str) -> bytes:
    """8 bytes of BLAKE2b over the id; never all zero (that marks an empty slot)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=_SLOT).digest()
    return digest if digest != _EMPTY else b"\0" * (_SLOT - 1) + b"\1"


def _indexed(sequence: int) -> bool:
    return 0 < sequence <= MAX_INDEXED_SEQUENCE


class SeenEvents:
    """Thread-safe: the loop asks :meth:`fresh`, the writer thread reports :meth:`written`."""

    def __init__(self, directory: Path, gaps: GapTracker) -> None:
        self._dir = directory / INDEX_DIR
        self._dir.mkdir(exist_ok=True)
        self._gaps = gaps
        self._fds: dict[str, int] = {}
        self._pending: dict[tuple[str, int], bytes] = {}
        """Prepared, not yet durable: later batches must skip them too."""
        self._recent: LRUCache[str, bool] = LRUCache(maxsize=UNSEQUENCED_WINDOW)
        self._lock = threading.Lock()

    def use(self, gaps: GapTracker) -> None:
        """Answer from ``gaps`` from now on (the writer restores it at start-up)."""
        self._gaps = gaps

    def reset(self) -> None:
        """Forget everything (before rebuilding from the whole log)."""
        with self._lock:
            self._close_files()
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir.mkdir()
            self._pending.clear()
            self._recent.clear()

    def fresh(self, events: Sequence[Event]) -> tuple[list[Event], list[Identity]]:
        """The events neither in the log nor prepared already, and their identities; they
        count as prepared from now on."""
        out: list[Event] = []
        identities: list[Identity] = []
        with self._lock:
            for event in events:
                source, sequence = event.source, event.sequence
                if not _indexed(sequence):
                    if event.id in self._recent:
                        continue
                    self._recent[event.id] = True
                    out.append(event)
                    identities.append((source, sequence, event.id, _EMPTY))
                    continue
                key = (source, sequence)
                mark = fingerprint(event.id)
                known = self._pending.get(key)
                if known is None and self._gaps.holds(source, sequence):
                    known = self._read(source, sequence)
                if known == mark:
                    continue  # a redelivery; a different mark is a reset counter: kept
                self._pending[key] = mark
                out.append(event)
                identities.append((source, sequence, event.id, mark))
        return out, identities

    def written(self, identities: Iterable[Identity]) -> None:
        """These events are durable in the log (the gap tracker has observed them)."""
        runs: dict[str, list[tuple[int, bytes]]] = {}
        with self._lock:
            for source, sequence, event_id, mark in identities:
                if _indexed(sequence):
                    runs.setdefault(source, []).append((sequence, mark))
                else:
                    self._recent[event_id] = True
            for source, slots in runs.items():
                self._write_slots(source, slots)
                for sequence, mark in slots:
                    if self._pending.get((source, sequence)) == mark:
                        del self._pending[(source, sequence)]

    def sync(self) -> None:
        """Make every slot written so far durable (before a snapshot relies on them)."""
        with self._lock:
            for fd in self._fds.values():
                os.fsync(fd)

    def close(self) -> None:
        with self._lock:
            self._close_files()

    def _close_files(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def _fd(self, source: str) -> int:
        fd = self._fds.get(source)
        if fd is None:
            name = "seq-" + hashlib.sha256(source.encode()).hexdigest()[:32] + ".bin"
            fd = self._fds[source] = os.open(self._dir / name, os.O_RDWR | os.O_CREAT, 0o644)
        return fd

    def _read(self, source: str, sequence: int) -> bytes:
        return os.pread(self._fd(source), _SLOT, (sequence - 1) * _SLOT).ljust(_SLOT, b"\0")

    def _write_slots(self, source: str, slots: list[tuple[int, bytes]]) -> None:
        """One ``pwrite`` per run of consecutive numbers (a batch is mostly one run)."""
        fd = self._fd(source)
        slots.sort(key=lambda slot: slot[0])  # stable: the batch's order within a number
        start, run = slots[0][0], [slots[0][1]]
        for sequence, mark in slots[1:]:
            if sequence == start + len(run):
                run.append(mark)
            elif sequence == start + len(run) - 1:
                run[-1] = mark  # the same number twice in one batch: the later wins
            else:
                os.pwrite(fd, b"".join(run), (start - 1) * _SLOT)
                start, run = sequence, [mark]
        os.pwrite(fd, b"".join(run), (start - 1) * _SLOT)
