"""Records stored in Redis and the shapes the service and API hand out.

Families follow ``XRecord`` (stored, may hold hashes) -> ``XRead`` (safe to show).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from services.tokens.permissions import Role
from shared.auth import Permission, TokenKind

__all__ = [
    "CreatedToken",
    "IntrospectionResponse",
    "TeamRead",
    "TokenRead",
    "TokenRecord",
    "TokenStatus",
    "UserRead",
    "UserRecord",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class TokenStatus(StrEnum):
    active = "active"
    expired = "expired"
    revoked = "revoked"


class UserRecord(BaseModel):
    model_config = _FROZEN

    id: str
    email: str
    role: Role
    teams: frozenset[str] = frozenset()
    active: bool = True
    created_at: datetime
    deactivated_at: datetime | None = None


class UserRead(UserRecord):
    """A user as the API shows it (nothing secret in a user record)."""


class TeamRead(BaseModel):
    model_config = _FROZEN

    name: str


class TokenRecord(BaseModel):
    """A token as stored. Holds HMAC digests of secrets, never a secret."""

    model_config = _FROZEN

    id: str
    kind: TokenKind
    name: str
    description: str = ""
    permissions: frozenset[Permission] = frozenset()
    """Global tokens: the chosen subset. Team tokens: the team-resource set. User tokens: empty
    (they follow the user's current role at every check)."""
    team: str | None = None
    user_id: str | None = None
    created_by_user: str | None = None
    created_by_token: str | None = None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    expired_at: datetime | None = None
    """Set by the expiry sweep when it emitted ``token.expired``."""
    rotated_at: datetime | None = None
    digest: str
    """Hex HMAC-SHA256 of the current secret."""
    previous_digest: str | None = None
    """Hex HMAC of the secret replaced by the last rotation (valid until ``previous_until``)."""
    previous_until: datetime | None = None

    def status(self, now: datetime) -> TokenStatus:
        if self.revoked_at is not None:
            return TokenStatus.revoked
        if self.expires_at <= now:
            return TokenStatus.expired
        return TokenStatus.active


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
