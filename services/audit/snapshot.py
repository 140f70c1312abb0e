"""The writer's start-up snapshot: where the log was at the last checkpoint, and the sequence
state up to there, so opening a log reads only what came after (not the whole log).

``writer-state.json`` holds ``{"seq", "hash", "segment", "end", "sources"}``: record ``seq``
has ``hash`` and its line ends at byte ``end`` of the segment whose first seq is ``segment``;
``sources`` is the gap tracker's state after it. It is written after each checkpoint (replaced
atomically) and trusted only if the log still has that record with that hash; otherwise the
writer rebuilds everything from the whole log, as it did before snapshots existed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = ["SNAPSHOT_FILE", "Snapshot", "read_snapshot", "write_snapshot"]

SNAPSHOT_FILE: Final = "writer-state.json"


@dataclass(frozen=True, slots=True)
class Snapshot:
    seq: int
    hash: str
    segment: int
    """First seq of the segment holding record ``seq``."""
    end: int
    """Byte offset just after record ``seq``'s newline in that segment."""
    sources: dict[str, Any]


def read_snapshot(directory: Path) -> Snapshot | None:
    """The snapshot in ``directory``, or None when there is none or it does not parse."""
    try:
        doc = json.loads((directory / SNAPSHOT_FILE).read_bytes())
        return Snapshot(
            seq=int(doc["seq"]),
            hash=str(doc["hash"]),
            segment=int(doc["segment"]),
            end=int(doc["end"]),
            sources=dict(doc["sources"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_snapshot(directory: Path, snapshot: Snapshot) -> None:
    """Replace the snapshot atomically. Not fsynced: losing it only means an older snapshot
    (or none) at the next start, which replays more of the log; never a wrong answer."""
    body = json.dumps(
        {
            "seq": snapshot.seq,
            "hash": snapshot.hash,
            "segment": snapshot.segment,
            "end": snapshot.end,
            "sources": snapshot.sources,
        }
    )
    tmp = directory / (SNAPSHOT_FILE + ".tmp")
    tmp.write_text(body)
    os.replace(tmp, directory / SNAPSHOT_FILE)
