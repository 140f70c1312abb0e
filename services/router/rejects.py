"""Why a message was rejected: stable reason codes carried in ``alerts.rejected`` headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shared.auth import redact_tokens

__all__ = [
    "EVALUATION_ERROR",
    "INVALID_JSON",
    "INVALID_UTF8",
    "MALFORMED_AUTHORIZATION",
    "MISSING_TOKEN",
    "OVERSIZED",
    "PERMISSION_DENIED",
    "SCHEMA_VIOLATION",
    "Rejection",
]

MISSING_TOKEN: Final = "missing_token"  # noqa: S105 - a reason code, not a secret
MALFORMED_AUTHORIZATION: Final = "malformed_authorization"
PERMISSION_DENIED: Final = "permission_denied"
INVALID_UTF8: Final = "invalid_utf8"
INVALID_JSON: Final = "invalid_json"
SCHEMA_VIOLATION: Final = "schema_violation"
OVERSIZED: Final = "oversized"
EVALUATION_ERROR: Final = "evaluation_error"
"""The ruleset raised on this alert (a bug, not the producer's fault); kept for replay."""
# Token failures use the validator's own codes: token_malformed, token_unknown, token_expired,
# token_revoked, user_deactivated.


@dataclass(frozen=True, slots=True)
class Rejection:
    """A stable ``reason`` code and a human ``detail`` (token-shaped text is redacted)."""

    reason: str
    detail: str

    @classmethod
    def of(cls, reason: str, detail: str) -> Rejection:
        return cls(reason, redact_tokens(detail)[:500])
