"""What a condition's ``field`` names and how an alert's value for it is read.

Both evaluators read fields through this module, so "the value of a field" means one thing:

* alert attributes (``service``, ``severity`` ...) are read as text;
* ``labels.<name>`` is one label (everything after ``labels.`` is the label name);
* ``annotations.a.b`` and ``payload.a.b`` walk nested objects by key.

A field is *missing* when a key is absent, a path crosses a non-object, or the value is null.
Numbers and booleans read as JSON text (``3``, ``true``); empty lists and objects read as ``""``;
other lists and objects as compact JSON with sorted keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import Enum
from typing import Any, Final

from shared.alert import AlertView

__all__ = ["ATTRIBUTES", "CONTAINERS", "FieldReader", "field_error", "make_getter", "resolve"]

ATTRIBUTES: Final = frozenset(
    {"id", "dedup_key", "source", "summary", "severity", "status", "service", "environment", "team"}
)
"""Alert attributes a rule may test directly."""
CONTAINERS: Final = ("labels", "annotations", "payload")
MAX_FIELD_CHARS: Final = 256

FieldReader = Callable[[AlertView], str | None]
"""Reads one field of an alert as text, or None when the field is missing."""


def field_error(field: str) -> str | None:
    """Why ``field`` is not a valid field name, or None when it is."""
    if len(field) > MAX_FIELD_CHARS:
        return f"field name is longer than {MAX_FIELD_CHARS} characters"
    if field in ATTRIBUTES:
        return None
    head, dot, rest = field.partition(".")
    if head in CONTAINERS and dot:
        if not rest or (head != "labels" and "" in rest.split(".")):
            return f"field {field!r} has an empty path segment"
        return None
    known = ", ".join(sorted(ATTRIBUTES))
    return f"unknown field {field!r}; use one of {known} or labels.*, annotations.*, payload.*"


def as_text(value: Any) -> str | None:
    """The text a condition compares against; None means missing."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.value if isinstance(value, Enum) else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)) and not value:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _walk(root: dict[str, Any], path: list[str]) -> str | None:
    node: Any = root
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return as_text(node)


def make_getter(field: str) -> FieldReader:
    """A fast reader for ``field`` (assumed valid, see :func:`field_error`)."""
    if field in ATTRIBUTES:
        return lambda alert: as_text(getattr(alert, field))
    head, _, rest = field.partition(".")
    if head == "labels":
        return lambda alert: alert.labels.get(rest)
    path = rest.split(".")
    if head == "annotations":
        return lambda alert: _walk(alert.annotations, path)
    return lambda alert: _walk(alert.payload, path)


def resolve(alert: AlertView, field: str) -> str | None:
    """The value of ``field`` for ``alert`` (the plain, slow way)."""
    if field in ATTRIBUTES:
        return as_text(getattr(alert, field))
    head, _, rest = field.partition(".")
    if head == "labels":
        return alert.labels.get(rest)
    container: dict[str, Any] = getattr(alert, head)
    return _walk(container, rest.split("."))
