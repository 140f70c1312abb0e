"""Who is looking: the session from the cookie, re-checked against the token on every request.

The check runs the same token validator as every API (cache invalidated by pub/sub on revoke,
rotation, deactivation and role change), so revoking the token or deactivating its user ends
the session at the next request. The session stays bound to the token id it was opened with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from services.console.sessions import Session, SessionStore
from shared.auth import Permission, Principal, TokenValidator
from shared.errors import AlertyardError, UnauthenticatedError

__all__ = ["SESSION_COOKIE", "CurrentViewer", "SignInRequired", "Viewer", "current_viewer"]

SESSION_COOKIE = "alertyard_session"


class SignInRequired(AlertyardError):  # noqa: N818  # a redirect, not a failure
    """No usable session: the handler sends the browser to the sign-in page with ``reason``."""

    code = "sign_in_required"
    http_status = 303

    def __init__(self, reason: str) -> None:
        super().__init__("sign in to continue", reason=reason)
        self.reason = reason


@dataclass(frozen=True)
class Viewer:
    session: Session
    principal: Principal

    @property
    def token(self) -> str:
        return self.session.token

    def can(self, permission: Permission) -> bool:
        return self.principal.has(permission)


async def current_viewer(request: Request) -> Viewer:
    """The signed-in viewer, or :class:`SignInRequired` (the session is closed if it ended)."""
    sessions: SessionStore = request.app.state.sessions
    validator: TokenValidator = request.app.state.validator
    session_id = request.cookies.get(SESSION_COOKIE)
    session = await sessions.load(session_id) if session_id else None
    if session is None:
        raise SignInRequired("expired" if session_id else "signed_out")
    try:
        principal = await validator.authenticate(session.token)
    except UnauthenticatedError as exc:
        if exc.retriable:  # the token store is down: not the session's fault
            raise
        await sessions.close(session.id)
        request.app.state.metrics.sessions_ended.labels(reason=exc.code).inc()
        raise SignInRequired(exc.code) from exc
    if principal.token_id != session.token_id:
        await sessions.close(session.id)
        raise SignInRequired("token_changed")
    viewer = Viewer(session=session, principal=principal)
    request.state.viewer = viewer  # error pages keep the navigation of whoever is looking
    return viewer


CurrentViewer = Annotated[Viewer, Depends(current_viewer)]
