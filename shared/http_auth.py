"""FastAPI dependencies that authorise a request with the process's token validator.

Each service puts its validator (``services.tokens`` implements :class:`TokenValidator`) on
``app.state.validator``; endpoints declare what they need with ``Depends(require(...))``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from shared.auth import Permission, Principal, TokenValidator
from shared.errors import ForbiddenError, UnauthenticatedError

__all__ = ["authenticated", "require"]


def _validator(request: Request) -> TokenValidator:
    validator: TokenValidator = request.app.state.validator
    return validator


async def authenticated(request: Request) -> Principal:
    """The principal behind the request's ``Authorization: Bearer`` token (401 otherwise)."""
    header = request.headers.get("authorization")
    if not header:
        raise UnauthenticatedError("missing Authorization header; send 'Bearer <token>'")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthenticatedError("Authorization header must be 'Bearer <token>'")
    return await _validator(request).authenticate(token.strip())


def require(permission: Permission) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that authenticates and then demands ``permission`` (403 otherwise)."""

    async def dependency(request: Request) -> Principal:
        principal = await authenticated(request)
        if not principal.has(permission):
            raise ForbiddenError(f"this token lacks the {permission.value} permission")
        return principal

    dependency.__name__ = f"require_{permission.name}"
    return dependency
