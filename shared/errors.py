"""Error types that carry policy: a stable ``code`` and whether a retry can help.

Callers decide to retry by asking the error (``err.retriable``), never by listing types.
The ``code`` is stable API: it appears in HTTP error bodies and in ``alerts.rejected`` reasons.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AlertyardError",
    "ConflictError",
    "ForbiddenError",
    "InsecureSettingsError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "TokenInUrlError",
    "UnauthenticatedError",
    "UnavailableError",
    "ValidationFailedError",
]


class AlertyardError(RuntimeError):
    """Base of every error the project raises on purpose."""

    code: ClassVar[str] = "internal_error"
    retriable: ClassVar[bool] = False
    http_status: ClassVar[int] = 500

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        # Context is safe, structured detail (ids, names): never a secret.
        self.context = context

    def to_dict(self) -> dict[str, Any]:
        """The JSON body an API returns for this error."""
        body: dict[str, Any] = {"code": self.code, "detail": self.detail}
        if self.context:
            body["context"] = self.context
        return body


class ValidationFailedError(AlertyardError):
    code = "invalid_request"
    http_status = 422


class UnauthenticatedError(AlertyardError):
    code = "unauthenticated"
    http_status = 401


class ForbiddenError(AlertyardError):
    code = "forbidden"
    http_status = 403


class NotFoundError(AlertyardError):
    code = "not_found"
    http_status = 404


class ConflictError(AlertyardError):
    code = "conflict"
    http_status = 409


class RateLimitedError(AlertyardError):
    code = "rate_limited"
    retriable = True
    http_status = 429


class UnavailableError(AlertyardError):
    """A backing service (Kafka, Redis) did not answer; trying again later may work."""

    code = "unavailable"
    retriable = True
    http_status = 503


class PayloadTooLargeError(AlertyardError):
    code = "payload_too_large"
    http_status = 413


class TokenInUrlError(AlertyardError):
    """A token in a URL ends up in proxy logs, browser history and referrers: refused."""

    code = "token_in_url"
    http_status = 400


class InsecureSettingsError(AlertyardError):
    """A service refuses to start with settings that would make it unsafe."""

    code = "insecure_settings"
