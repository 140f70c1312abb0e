"""The alert contract: what producers publish to the alerts topic."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Protocol

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_ALERT_BYTES",
    "MAX_LABELS",
    "MAX_NESTING_DEPTH",
    "Alert",
    "AlertStatus",
    "AlertView",
    "Severity",
    "nesting_depth",
]

MAX_ALERT_BYTES: Final = 64 * 1024
"""Largest accepted message value; larger ones are rejected before parsing."""
MAX_NESTING_DEPTH: Final = 8
"""Deepest accepted nesting of ``payload`` / ``annotations``; deeper is a schema violation."""
MAX_LABELS: Final = 64
MAX_LABEL_VALUE_CHARS: Final = 1024
MAX_TEXT_CHARS: Final = 4096


class Severity(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"


class AlertStatus(StrEnum):
    firing = "firing"
    resolved = "resolved"


def nesting_depth(value: Any) -> int:
    """Depth of nested dicts/lists: 0 for a scalar, 1 for a flat dict or list."""
    depth = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            depth = max(depth, level + 1)
            stack.extend((child, level + 1) for child in node.values())
        elif isinstance(node, list):
            depth = max(depth, level + 1)
            stack.extend((child, level + 1) for child in node)
    return depth


def _has_non_finite(value: Any) -> bool:
    """A NaN or an infinity anywhere in ``value``: Python's and pydantic's JSON readers take
    them, but they are not JSON, and a copy carrying them breaks a strict team consumer."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, float):
            if not math.isfinite(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _now() -> datetime:
    return datetime.now(UTC)


Instant = Annotated[
    datetime,
    WithJsonSchema(
        {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}]},
        mode="validation",
    ),
]
"""An RFC 3339 time, or Unix seconds (pydantic reads both): what producers may send."""


LabelName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE_CHARS)]


class AlertView(Protocol):
    """What routing reads from an alert (plan, rules, decisions): an :class:`Alert`, or the
    router's msgspec view of a native alert (``shared.alert_decode``), which skips building one.
    """

    @property
    def id(self) -> str: ...
    @property
    def dedup_key(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def status(self) -> AlertStatus: ...
    @property
    def service(self) -> str: ...
    @property
    def environment(self) -> str: ...
    @property
    def team(self) -> str | None: ...
    @property
    def labels(self) -> dict[str, str]: ...
    @property
    def annotations(self) -> dict[str, Any]: ...
    @property
    def payload(self) -> dict[str, Any]: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime | None: ...
    def kafka_key(self) -> bytes: ...


class Alert(BaseModel):
    """One alert as a producer publishes it.

    The Kafka key is ``dedup_key`` so that the firing and resolved messages of one alert keep
    their order within a partition.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_TEXT_CHARS)

    id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=128)
    """Unique id; generated when the producer sends none. Consumers dedupe on it."""
    dedup_key: str = Field(default="", max_length=256, validate_default=True)
    """Groups firing/resolved messages of one alert; defaults to ``id`` (also when empty)."""
    source: str = Field(min_length=1, max_length=256)
    """Who sent it, e.g. ``prometheus``, ``ci``."""
    summary: str = Field(min_length=1, max_length=1024)
    severity: Severity = Severity.warning
    status: AlertStatus = AlertStatus.firing
    service: str = Field(default="", max_length=256)
    environment: str = Field(default="", max_length=128)
    team: str | None = Field(default=None, max_length=128)
    """Stamped by the router when the alert came with a team token; producers may leave it out."""
    labels: dict[LabelName, LabelValue] = Field(default_factory=dict, max_length=MAX_LABELS)
    """Checked by pydantic's core, not a Python validator: this runs for every routed alert."""
    annotations: dict[str, Any] = Field(default_factory=dict)
    payload: dict[str, Any] = Field(default_factory=dict)
    starts_at: Instant = Field(default_factory=_now)
    ends_at: Instant | None = None

    @field_validator("annotations", "payload")
    @classmethod
    def _limit_nesting(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Most payloads are flat without floats: no need to walk them (this runs for every
        # alert that takes pydantic's path).
        for child in value.values():
            if isinstance(child, dict | list | float):
                break
        else:
            return value
        depth = nesting_depth(value)
        if depth > MAX_NESTING_DEPTH:
            raise ValueError(f"nesting depth {depth} exceeds the limit of {MAX_NESTING_DEPTH}")
        if _has_non_finite(value):  # refused as invalid JSON, which is what it is
            raise PydanticCustomError("json_invalid", "NaN and Infinity are not JSON numbers")
        return value

    @field_validator("dedup_key")
    @classmethod
    def _empty_dedup_key_is_the_id(cls, value: str, info: ValidationInfo) -> str:
        # A field validator (run on the default too) costs less than a model validator, and
        # this runs for every routed alert. Fields are validated in order: ``id`` is in
        # ``info.data`` unless it was invalid (then the alert is refused anyway).
        return value or str(info.data.get("id", ""))

    def kafka_key(self) -> bytes:
        return self.dedup_key.encode()

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Alert:
        """Parse a message value; raises ``ValueError`` / ``ValidationError`` on bad input."""
        return cls.model_validate(json.loads(raw.decode("utf-8")))
