"""Errors of the token service's changes (token check failures: :mod:`shared.tokens.errors`)."""

from __future__ import annotations

from shared.errors import ConflictError, UnavailableError

__all__ = ["AlreadyBootstrappedError", "ChangeNotRecordedError"]


class ChangeNotRecordedError(UnavailableError):
    """The change and its lifecycle event could not be written together, so neither was."""

    code = "change_not_recorded"


class AlreadyBootstrappedError(ConflictError):
    code = "already_bootstrapped"
