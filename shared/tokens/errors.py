"""Why a token check failed. Their ``code`` is stable API: the router copies it into
``alerts.rejected`` reasons and the HTTP APIs return it in error bodies."""

from __future__ import annotations

from shared.errors import UnauthenticatedError

__all__ = [
    "AuthUnavailableError",
    "TokenExpiredError",
    "TokenMalformedError",
    "TokenRevokedError",
    "TokenUnknownError",
    "UserDeactivatedError",
]


class TokenMalformedError(UnauthenticatedError):
    """Wrong prefix, length, alphabet or checksum: rejected before any Redis lookup."""

    code = "token_malformed"


class TokenUnknownError(UnauthenticatedError):
    """Well-formed and correctly checksummed, but no such token is stored."""

    code = "token_unknown"


class TokenExpiredError(UnauthenticatedError):
    code = "token_expired"


class TokenRevokedError(UnauthenticatedError):
    """Revoked, or an old secret whose rotation grace period is over."""

    code = "token_revoked"


class UserDeactivatedError(UnauthenticatedError):
    """A user token whose user has been deactivated."""

    code = "user_deactivated"


class AuthUnavailableError(UnauthenticatedError):
    """Redis did not answer and the token is not cached (fail closed). Retrying may work."""

    code = "auth_unavailable"
    retriable = True
    http_status = 503
