"""Native alerts in an HTTP body: one JSON object, a JSON array of them, or NDJSON."""

from __future__ import annotations

from typing import Any

import orjson

from shared.alert import Alert
from shared.formats._common import Problem, build_alert
from shared.reasons import INVALID_JSON, SCHEMA_VIOLATION
from shared.severity import SeverityTable

__all__ = ["convert", "split_documents"]


def split_documents(body: bytes) -> list[Any] | Problem:
    """The JSON documents in ``body`` (object, array or one object per line)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as whole:
        lines = [line for line in body.splitlines() if line.strip()]
        if len(lines) < 2:
            return Problem.of(None, INVALID_JSON, str(whole))
        docs = []
        for number, line in enumerate(lines, start=1):
            try:
                docs.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                return Problem.of(None, INVALID_JSON, f"NDJSON line {number}: {exc}")
        return docs
    return doc if isinstance(doc, list) else [doc]


def convert(
    docs: list[Any], *, severities: SeverityTable, token_id: str = ""
) -> list[Alert | Problem]:
    return [_one(doc, index, severities, token_id) for index, doc in enumerate(docs)]


def _one(doc: Any, index: int, severities: SeverityTable, token_id: str) -> Alert | Problem:
    if not isinstance(doc, dict):
        return Problem.of(index, SCHEMA_VIOLATION, "each alert must be a JSON object")
    return build_alert(dict(doc), index, severities, token_id)
