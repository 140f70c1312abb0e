"""What every format conversion shares: a per-alert problem and building the alert."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.alert import Alert
from shared.auth import redact_tokens
from shared.reasons import describe_validation_error
from shared.severity import SeverityTable, UnmappedSeverityError

__all__ = ["Problem", "build_alert"]


@dataclass(frozen=True, slots=True)
class Problem:
    """Why one alert of a request (``index``; None for the whole body) was refused."""

    index: int | None
    reason: str
    """A stable reason code, the same as in ``alerts.rejected`` (e.g. ``schema_violation``)."""
    detail: str

    @classmethod
    def of(cls, index: int | None, reason: str, detail: str) -> Problem:
        return cls(index, reason, redact_tokens(detail)[:500])

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason, "detail": self.detail}


def build_alert(
    fields: dict[str, Any], index: int | None, severities: SeverityTable, token_id: str = ""
) -> Alert | Problem:
    """Normalise the severity of ``fields`` and validate them as an alert."""
    try:
        severities.normalise_fields(fields, token_id=token_id)
    except UnmappedSeverityError as exc:
        return Problem.of(index, exc.code, str(exc))
    try:
        return Alert.model_validate(fields)
    except ValidationError as exc:
        return Problem.of(index, *describe_validation_error(exc))
