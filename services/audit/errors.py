"""Errors the audit service raises on purpose (stable codes, see shared.errors)."""

from __future__ import annotations

from shared.errors import AlertyardError, ConflictError, UnavailableError, ValidationFailedError

__all__ = [
    "InvalidCursorError",
    "LogCorruptError",
    "LogLockedError",
    "LogWriteFailedError",
    "SigningKeyError",
]


class LogLockedError(ConflictError):
    """Another process already writes to this log directory."""

    code = "audit_log_locked"


class LogCorruptError(AlertyardError):
    """The log on disk cannot be appended to safely (a record in the middle does not parse)."""

    code = "audit_log_corrupt"


class LogWriteFailedError(UnavailableError):
    """A write or fsync failed part-way; the writer stops so a restart can recover from disk."""

    code = "audit_log_write_failed"


class SigningKeyError(AlertyardError):
    """The checkpoint signing key (or the public key for verification) cannot be loaded."""

    code = "audit_signing_key_invalid"


class InvalidCursorError(ValidationFailedError):
    code = "audit_invalid_cursor"
