"""Why a message was rejected: stable reason codes carried in ``alerts.rejected`` headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from shared.auth import redact_tokens
from shared.reasons import INVALID_JSON, INVALID_UTF8, OVERSIZED, SCHEMA_VIOLATION
from shared.severity import SEVERITY_UNMAPPED

__all__ = [
    "EVALUATION_ERROR",
    "INVALID_JSON",
    "INVALID_UTF8",
    "MALFORMED_AUTHORIZATION",
    "MISSING_TOKEN",
    "OVERSIZED",
    "PERMISSION_DENIED",
    "SCHEMA_VIOLATION",
    "SEVERITY_UNMAPPED",
    "Rejection",
]

MISSING_TOKEN: Final = "missing_token"  # noqa: S105 - a reason code, not a secret
MALFORMED_AUTHORIZATION: Final = "malformed_authorization"
PERMISSION_DENIED: Final = "permission_denied"
# INVALID_UTF8, INVALID_JSON, SCHEMA_VIOLATION, OVERSIZED and SEVERITY_UNMAPPED live in
# shared.reasons: the ingest service answers with the same codes.
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
