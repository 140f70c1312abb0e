"""Authorisation vocabulary shared by every service: permissions, principals, the validator port.

The token service implements :class:`TokenValidator`; the router and the HTTP APIs depend only on
this protocol, so they never see how tokens are stored.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Final, Protocol

from pydantic import BaseModel, ConfigDict

__all__ = ["TOKEN_RE", "Permission", "Principal", "TokenKind", "TokenValidator", "redact_tokens"]


class Permission(StrEnum):
    alerts_publish = "alerts:publish"
    alerts_read = "alerts:read"
    rules_read = "rules:read"
    rules_write = "rules:write"
    tokens_read = "tokens:read"
    tokens_write = "tokens:write"
    users_write = "users:write"
    teams_write = "teams:write"
    audit_read = "audit:read"


class TokenKind(StrEnum):
    global_ = "global"
    team = "team"
    user = "user"


TOKEN_RE: Final = re.compile(r"\bay[gtu]_[A-Za-z0-9]{40,}\b")
"""Shape of every alertyard token (``ayg_`` global, ``ayt_`` team, ``ayu_`` user).

Secret scanners and our own log redaction use this pattern.
"""


def redact_tokens(text: str) -> str:
    """Replace anything token-shaped in ``text`` with a placeholder."""
    return TOKEN_RE.sub("[redacted-token]", text)


class Principal(BaseModel):
    """The effective identity behind a valid token at the moment of the check."""

    model_config = ConfigDict(frozen=True)

    token_id: str
    kind: TokenKind
    permissions: frozenset[Permission]
    team: str | None = None
    """Set for team tokens: the only team whose resources this principal may touch."""
    user_id: str | None = None
    """Set for user tokens: whose rights the token inherits."""
    teams: frozenset[str] = frozenset()
    """Teams the principal belongs to (the token's team, or the user's memberships)."""
    is_admin: bool = False
    """Org-wide rights over every team's resources (owner/admin users, global tokens)."""

    def has(self, permission: Permission) -> bool:
        return permission in self.permissions

    def may_manage_team(self, team: str) -> bool:
        """True when the principal may change resources owned by ``team``."""
        return self.is_admin or team in self.teams


class TokenValidator(Protocol):
    """Checks a raw bearer token. Implemented by :class:`shared.tokens.RedisTokenValidator`."""

    async def authenticate(self, raw_token: str) -> Principal:
        """The principal for ``raw_token``; raises ``UnauthenticatedError`` (with a stable
        ``code`` such as ``token_expired``) when the token is not valid now."""
        ...

    def authenticate_cached(self, raw_token: str) -> Principal | None:
        """The principal from the in-process cache without any I/O, or None on a miss."""
        ...
