"""Token and user records as stored in Redis: what the token service writes and every
validator reads. They hold HMAC digests of secrets, never a secret."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from shared.auth import Permission, TokenKind
from shared.tokens.permissions import Role

__all__ = ["TokenRecord", "TokenStatus", "UserRecord"]

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
