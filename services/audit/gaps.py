"""Per-source sequence tracking: a missing sequence number means an event was lost upstream.

The outbox numbers each source's events 1, 2, 3, ... with no holes, so a jump is a loss (or a
delay: a late event fills its hole again). A number seen twice with a new event id means the
source's counter was reset; it is counted as ``repeated``, not hidden.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["Gap", "GapTracker", "SourceGaps"]


class Gap(BaseModel):
    """Sequence numbers ``first..last`` (inclusive) of ``source`` that never arrived."""

    model_config = ConfigDict(frozen=True)

    source: str
    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


class SourceGaps(BaseModel):
    """What the log knows about one source's sequence."""

    model_config = ConfigDict(frozen=True)

    source: str
    last_sequence: int
    """Highest sequence number seen."""
    missing: list[tuple[int, int]]
    """Open gaps as inclusive ``(first, last)`` ranges, oldest first."""
    missing_count: int
    repeated: int
    """Sequence numbers that arrived again with a different event id (counter reset?)."""


@dataclass
class _State:
    last: int = 0
    missing: list[list[int]] = field(default_factory=list)
    repeated: int = 0


class GapTracker:
    """Thread-safe: the writer thread observes, HTTP handlers read snapshots."""

    def __init__(self) -> None:
        self._sources: dict[str, _State] = {}
        self._lock = threading.Lock()

    def observe(self, source: str, sequence: int) -> Gap | None:
        """Record one event's sequence; returns the new gap it reveals, if any."""
        with self._lock:
            return self._observe(source, sequence)

    def observe_many(self, items: Iterable[tuple[str, int]]) -> list[Gap]:
        """Record ``(source, sequence)`` pairs in order (one lock for the batch); returns the new
        gaps they reveal."""
        gaps = []
        with self._lock:
            for source, sequence in items:
                if gap := self._observe(source, sequence):
                    gaps.append(gap)
        return gaps

    def _observe(self, source: str, sequence: int) -> Gap | None:
        if sequence <= 0:  # never staged through the outbox: nothing to track
            return None
        state = self._sources.get(source)
        if state is None:
            state = self._sources[source] = _State()
        if sequence == state.last + 1:
            state.last = sequence
            return None
        if sequence > state.last + 1:
            gap = Gap(source=source, first=state.last + 1, last=sequence - 1)
            state.missing.append([gap.first, gap.last])
            state.last = sequence
            return gap
        if not _fill(state.missing, sequence):
            state.repeated += 1
        return None

    def holds(self, source: str, sequence: int) -> bool:
        """Whether an event numbered ``sequence`` of ``source`` was seen (``sequence`` >= 1).

        Seen means at or below the highest number and not in an open gap: the outbox numbers
        a source's events without holes, so this set needs no per-event memory."""
        with self._lock:
            state = self._sources.get(source)
            if state is None or not 0 < sequence <= state.last:
                return False
            return not any(first <= sequence <= last for first, last in state.missing)

    def export(self) -> dict[str, Any]:
        """The state as JSON-able data, for the writer's start-up snapshot."""
        with self._lock:
            return {
                name: {"last": s.last, "missing": s.missing, "repeated": s.repeated}
                for name, s in sorted(self._sources.items())
            }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> GapTracker:
        """A tracker from :meth:`export` output (``ValueError``/``TypeError``/``KeyError`` if
        it is not that)."""
        tracker = cls()
        for name, state in data.items():
            missing = [[int(a), int(b)] for a, b in state["missing"]]
            tracker._sources[str(name)] = _State(
                int(state["last"]), missing, int(state["repeated"])
            )
        return tracker

    def snapshot(self) -> list[SourceGaps]:
        with self._lock:
            return [
                SourceGaps(
                    source=name,
                    last_sequence=state.last,
                    missing=[(a, b) for a, b in state.missing],
                    missing_count=sum(b - a + 1 for a, b in state.missing),
                    repeated=state.repeated,
                )
                for name, state in sorted(self._sources.items())
            ]


def _fill(missing: list[list[int]], sequence: int) -> bool:
    """Remove ``sequence`` from the open gaps (a late arrival); False if it was not missing."""
    for index, (first, last) in enumerate(missing):
        if first <= sequence <= last:
            pieces = [[first, sequence - 1], [sequence + 1, last]]
            missing[index : index + 1] = [[a, b] for a, b in pieces if a <= b]
            return True
    return False
