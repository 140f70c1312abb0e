"""How a stored token (and, for user tokens, its user) becomes the principal of a request."""

from __future__ import annotations

from shared.auth import Principal, TokenKind
from shared.tokens.errors import UserDeactivatedError
from shared.tokens.permissions import ROLE_PERMISSIONS
from shared.tokens.records import TokenRecord, UserRecord

__all__ = ["principal_for"]


def principal_for(token: TokenRecord, user: UserRecord | None) -> Principal:
    """The effective rights of ``token`` now; user tokens follow the user's current role."""
    if token.kind is TokenKind.global_:
        return Principal(
            token_id=token.id, kind=token.kind, permissions=token.permissions, is_admin=True
        )
    if token.kind is TokenKind.team:
        team = token.team or ""
        return Principal(
            token_id=token.id,
            kind=token.kind,
            permissions=token.permissions,
            team=team,
            teams=frozenset({team}),
        )
    if user is None or not user.active:
        raise UserDeactivatedError("the user of this token is deactivated", token_id=token.id)
    return Principal(
        token_id=token.id,
        kind=token.kind,
        permissions=ROLE_PERMISSIONS[user.role],
        user_id=user.id,
        teams=user.teams,
        is_admin=user.role.is_admin,
    )
