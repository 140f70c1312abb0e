"""Segment files: ``segment-<first seq, 20 digits>.jsonl``, rotated by size, read in seq order."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from shared.logging import get_logger

__all__ = [
    "SEGMENT_RE",
    "complete_lines",
    "cut_torn_tail",
    "fsync_dir",
    "list_segments",
    "read_from",
    "read_window",
    "segment_name",
]

log = get_logger(__name__)

SEGMENT_RE: Final = re.compile(r"^segment-(\d{20})\.jsonl$")


def segment_name(first_seq: int) -> str:
    return f"segment-{first_seq:020d}.jsonl"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """``(first seq, path)`` of every segment in ``directory``, in seq order."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        if match := SEGMENT_RE.match(entry.name):
            found.append((int(match.group(1)), entry))
    return sorted(found)


def complete_lines(data: bytes) -> list[bytes]:
    """The newline-terminated lines of ``data``; a torn last line (no newline yet) is left out."""
    end = data.rfind(b"\n")
    if end < 0:
        return []
    return data[:end].split(b"\n")


def fsync_dir(directory: Path) -> None:
    """Make a file creation in ``directory`` durable (the directory entry, not just the data)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_from(path: Path, offset: int) -> bytes:
    """The bytes of ``path`` from ``offset`` on."""
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read()


def read_window(path: Path, end: int, size: int) -> tuple[int, bytes]:
    """Up to ``size`` bytes of ``path`` ending at ``end``, with the offset they start at."""
    start = max(end - size, 0)
    with path.open("rb") as handle:
        handle.seek(start)
        return start, handle.read(end - start)


def cut_torn_tail(path: Path, data: bytes, offset: int = 0) -> bytes:
    """Drop a partial last line (a crash mid-write) from ``path``, whose bytes from ``offset``
    on are ``data``; returns what remains of ``data``."""
    if not data or data.endswith(b"\n"):
        return data
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as handle:
        handle.truncate(offset + keep)
        handle.flush()
        os.fsync(handle.fileno())
    log.warning("audit_torn_tail_cut", file=path.name, dropped_bytes=len(data) - keep)
    return data[:keep]
