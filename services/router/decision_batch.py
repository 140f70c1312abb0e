"""The ``batch-v2`` record of the decisions topic: a batch's decisions as compact rows.

The router's event loop is its bottleneck, so it publishes only what the indexer cannot derive,
in one ``orjson.dumps`` call: ``[head, placed, rows]`` where

- ``head`` is ``[received_at, routed_at, received_ms]`` (ISO 8601 strings and the index time),
  shared by the batch;
- ``placed`` is ``[[topic, partition, offset], ...]``: where each message of the batch landed;
- each row is ``[alert id, outcome, status, severity, dedup key or null (= the id), summary,
  service, teams, rule ids, ruleset version, fallback, token id, source topic, source
  partition, source offset, [indexes into placed]]``.

The indexer turns the rows into :class:`DecisionRecord` s with :class:`DecisionEncoder`: each
row, its placements resolved, is what Redis keeps (``services.router.decisions.stored_value``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from services.router.decisions import PUBLISHED, DecisionEncoder, DecisionRecord

__all__ = ["MAX_RECORD_BYTES", "DecisionBatch", "decode_batch", "encode_batch"]

MAX_RECORD_BYTES: Final = 512 * 1024
"""A record's value stays below this (the brokers' and librdkafka's limit is 1 MB); a larger
batch is split. One row is a few KB at most: every text field of an alert is length-limited."""

DecisionRow = Sequence[Any]
"""One decision's row, laid out as the module docstring says."""


class DecisionBatch:
    """What the router hands to the decisions topic for one batch (built on its loop)."""

    __slots__ = ("head", "placed", "rows")

    def __init__(
        self, head: list[Any], placed: Sequence[Sequence[Any]], rows: Sequence[DecisionRow]
    ) -> None:
        self.head = head
        self.placed = placed
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)


def encode_batch(batch: DecisionBatch, *, limit: int = MAX_RECORD_BYTES) -> list[bytes]:
    """The record values of ``batch``: one in the common case (one ``orjson.dumps``); halves
    of it, each with only the placements its rows use, when it is larger than ``limit``."""
    value = orjson.dumps([batch.head, batch.placed, batch.rows])
    if len(value) <= limit or len(batch.rows) <= 1:
        return [value]
    middle = len(batch.rows) // 2
    return [
        *encode_batch(_subset(batch, batch.rows[:middle]), limit=limit),
        *encode_batch(_subset(batch, batch.rows[middle:]), limit=limit),
    ]


def _subset(batch: DecisionBatch, rows: Sequence[DecisionRow]) -> DecisionBatch:
    """``rows`` of ``batch`` with ``placed`` cut down to (and re-indexed over) what they use."""
    placed: list[Sequence[Any]] = []
    renumbered: dict[int, int] = {}
    out: list[list[Any]] = []
    for row in rows:
        indexes = []
        for i in row[PUBLISHED]:
            if i not in renumbered:
                renumbered[i] = len(placed)
                placed.append(batch.placed[i])
            indexes.append(renumbered[i])
        out.append([*row[:PUBLISHED], indexes])
    return DecisionBatch(batch.head, placed, out)


def decode_batch(value: bytes) -> list[DecisionRecord]:
    """The :class:`DecisionRecord` s of one ``batch-v2`` record value."""
    (received_at, routed_at, received_ms), placed, rows = orjson.loads(value)
    from_row = DecisionEncoder(received_at, routed_at, received_ms).from_row
    records = []
    for row in rows:
        if len(row) != PUBLISHED + 1:  # stored as it is, so checked here, not at lookup
            raise ValueError(f"a decision row has {len(row)} columns, not {PUBLISHED + 1}")
        row[PUBLISHED] = [placed[i] for i in row[PUBLISHED]]
        records.append(from_row(row))
    return records
