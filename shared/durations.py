"""The one duration format of alertyard: ``90``, ``45s``, ``15m``, ``12h``, ``30d``, ``2w``.

The CLI options (``--expires-in 30d``), the settings (``ALERTYARD_TOKENS_MAX_TTL_S=365d``) and
the HTTP APIs (``"since": "2h"``) all read durations through :func:`parse_duration`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

from pydantic import BeforeValidator

__all__ = [
    "DURATION_RE",
    "DurationSeconds",
    "InvalidDurationError",
    "IsoInstant",
    "WholeSeconds",
    "parse_duration",
    "parse_instant",
]

UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_RE: Final = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
"""A whole number of seconds, or of the unit after it."""


class InvalidDurationError(ValueError):
    """Text that is not a duration (a ``ValueError``, so pydantic reports it as a 422)."""


def parse_duration(text: str, *, unit_required: bool = False) -> timedelta:
    """``"30d"`` -> 30 days. A bare number is seconds unless ``unit_required``."""
    match = DURATION_RE.match(text)
    if match is None or (unit_required and not match.group(2)):
        raise InvalidDurationError(f"{text!r} is not a duration like 30d, 12h, 15m or 90s")
    return timedelta(seconds=int(match.group(1)) * UNIT_SECONDS[match.group(2) or "s"])


def _seconds(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        float(value)
    except ValueError:  # not a plain number: it must be a duration
        return int(parse_duration(value).total_seconds())
    return value  # numeric strings go on to pydantic's own checks


DurationSeconds = Annotated[float, BeforeValidator(_seconds)]
"""Seconds (a float) that also accept the duration format (``"30d"``) in settings and bodies."""
WholeSeconds = Annotated[int, BeforeValidator(_seconds)]
"""Whole seconds that also accept the duration format."""


_ISO_RE: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)


def _iso_only(value: object) -> object:
    """Query parameters are text: pydantic would read ``"0.5"`` as a Unix time, which the
    documents (``format: date-time``) do not allow."""
    if isinstance(value, str) and not _ISO_RE.match(value):
        raise ValueError("expected an ISO 8601 time, e.g. 2026-01-31T12:00:00Z")
    return value


IsoInstant = Annotated[datetime, BeforeValidator(_iso_only)]
"""An ISO 8601 time in a query parameter (no Unix timestamps)."""


def parse_instant(text: str, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 instant (UTC when it has no offset), or a duration ago: ``90s``, ``2h``.

    A bare number is not accepted here (it would be ambiguous with a year)."""
    if (match := DURATION_RE.match(text)) and match.group(2):
        return (now or datetime.now(UTC)) - parse_duration(text)
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidDurationError(
            f"{text!r} is neither an ISO 8601 time nor a duration like 2h"
        ) from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)
