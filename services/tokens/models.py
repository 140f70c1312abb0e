"""The shapes the token service and its API hand out (the stored records are in
:mod:`shared.tokens.records`). Families follow ``XRecord`` (stored, may hold hashes) ->
``XRead`` (safe to show)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.auth import Permission, TokenKind
from shared.tokens.records import TokenStatus, UserRecord

__all__ = [
    "CreatedToken",
    "IntrospectionResponse",
    "TeamRead",
    "TokenRead",
    "TokenSecret",
    "UserRead",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class UserRead(UserRecord):
    """A user as the API shows it (nothing secret in a user record)."""


class TeamRead(BaseModel):
    model_config = _FROZEN

    name: str


class TokenRead(BaseModel):
    """A token as the API shows it: never the secret nor its hash."""

    model_config = _FROZEN

    id: str
    kind: TokenKind
    name: str
    description: str
    status: TokenStatus
    permissions: list[Permission]
    """Effective for global/team tokens; empty for user tokens (they follow the user)."""
    team: str | None
    user_id: str | None
    created_by_user: str | None
    created_by_token: str | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    rotated_at: datetime | None
    previous_secret_valid_until: datetime | None
    last_used_at: datetime | None


class CreatedToken(BaseModel):
    """The result of creating or rotating a token: the only time the secret is visible."""

    model_config = ConfigDict(frozen=True)

    raw: str = Field(repr=False)
    """The secret token. Shown once; only its HMAC is kept."""
    token: TokenRead


class TokenSecret(BaseModel):
    """A new secret, shown this once."""

    model_config = _FROZEN

    secret: str = Field(repr=False)
    token: TokenRead


class IntrospectionResponse(BaseModel):
    """RFC 7662-style answer; only ``active`` is set for a token that is not valid now."""

    model_config = _FROZEN

    active: bool
    token_id: str | None = None
    kind: TokenKind | None = None
    permissions: list[Permission] | None = None
    scope: str | None = None
    """RFC 7662 ``scope``: the permissions, space separated."""
    team: str | None = None
    teams: list[str] | None = None
    user_id: str | None = None
    exp: int | None = None
    """Expiry as a Unix timestamp (RFC 7662 ``exp``)."""
    iat: int | None = None
    token_type: str | None = None
    inactive_reason: str | None = None
    """Our extension: the stable error code when ``active`` is false."""
