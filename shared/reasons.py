"""Stable reason codes for refused alerts, shared by the router (``alerts.rejected`` headers)
and the ingest service (per-alert reasons in 400 bodies), so both speak the same codes."""

from __future__ import annotations

from typing import Final

from pydantic import ValidationError

from shared.severity import SEVERITY_UNMAPPED

__all__ = [
    "INVALID_JSON",
    "INVALID_UTF8",
    "OVERSIZED",
    "SCHEMA_VIOLATION",
    "SEVERITY_UNMAPPED",
    "describe_validation_error",
]

INVALID_UTF8: Final = "invalid_utf8"
INVALID_JSON: Final = "invalid_json"
SCHEMA_VIOLATION: Final = "schema_violation"
OVERSIZED: Final = "oversized"


def describe_validation_error(exc: ValidationError) -> tuple[str, str]:
    """The reason code and a short detail (never the input values) for a failed validation."""
    errors = exc.errors(include_input=False, include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return INVALID_JSON, next(e["msg"] for e in errors if e["type"] == "json_invalid")
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:5]]
    more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
    return SCHEMA_VIOLATION, "; ".join(parts) + more
