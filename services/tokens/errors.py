"""Errors of the token service's changes (token check failures: :mod:`shared.tokens.errors`)."""

from __future__ import annotations

from shared.errors import ConflictError, UnavailableError

# Deprecated aliases (these moved to shared.tokens.errors in #9), kept so the wave's branches
# merge; import them from shared.tokens.errors.
from shared.tokens.errors import (  # noqa: F401
    AuthUnavailableError,
    TokenExpiredError,
    TokenMalformedError,
    TokenRevokedError,
    TokenUnknownError,
    UserDeactivatedError,
)

__all__ = ["AlreadyBootstrappedError", "ChangeNotRecordedError"]


class ChangeNotRecordedError(UnavailableError):
    """The change and its lifecycle event could not be written together, so neither was."""

    code = "change_not_recorded"


class AlreadyBootstrappedError(ConflictError):
    code = "already_bootstrapped"
