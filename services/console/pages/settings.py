"""Organisation settings: API tokens (create, show the secret once, rotate, revoke), users and
teams. Every action is a call to the token service's API with the viewer's own token, so the
service functions and their authorization are exactly the API's."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.backend import Backend
from services.console.security import check_csrf
from services.console.sessions import SessionStore
from services.console.viewer import CurrentViewer, Viewer
from services.console.views import render
from services.tokens.models import TeamRead, TokenRead, UserRead
from shared.auth import Permission, TokenKind
from shared.tokens.permissions import Role

__all__ = ["EXPIRY_CHOICES", "GRACE_CHOICES", "build_settings_pages"]

EXPIRY_CHOICES = {"1 day": 86400, "7 days": 7 * 86400, "30 days": 30 * 86400, "90 days": 90 * 86400}
GRACE_CHOICES = {"none": 0, "5 minutes": 300, "1 hour": 3600, "24 hours": 86400}

_DONE = {
    "revoked": "The token is revoked: every service rejects it now.",
    "user_created": "The user was created. Give them a user token to sign in.",
    "user_deactivated": "The user is deactivated: their tokens stopped working.",
    "role_changed": "The role was changed; the user's tokens follow it at once.",
    "team_created": "The team was created.",
}


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def _sessions(request: Request) -> SessionStore:
    sessions: SessionStore = request.app.state.sessions
    return sessions


def _token_href(token_id: str) -> str:
    return "/settings/tokens/" + quote(token_id, safe="")


async def _teams(backend: Backend, viewer: Viewer) -> list[str]:
    if not viewer.can(Permission.rules_read):
        return sorted(viewer.principal.teams)
    teams = [
        TeamRead.model_validate(t)
        for t in await backend.get("tokens", "/v1/teams", token=viewer.token)
    ]
    names = sorted(t.name for t in teams)
    return names if viewer.principal.is_admin else [n for n in names if n in viewer.principal.teams]


async def _users(backend: Backend, viewer: Viewer) -> list[UserRead]:
    if not viewer.can(Permission.users_write):
        return []
    found = await backend.get("tokens", "/v1/users", token=viewer.token)
    return [UserRead.model_validate(u) for u in found]


def build_settings_pages() -> APIRouter:
    router = APIRouter(prefix="/settings")
    _token_pages(router)
    _directory_pages(router)
    return router


def _token_pages(router: APIRouter) -> None:
    @router.get("", include_in_schema=False)
    async def settings_home(viewer: CurrentViewer) -> Response:
        return RedirectResponse("/settings/tokens", status_code=303)

    @router.get("/tokens", response_class=HTMLResponse, summary="API tokens")
    async def tokens_page(
        request: Request, viewer: CurrentViewer, done: str = "", error: str = ""
    ) -> Response:
        backend = _backend(request)
        found = await backend.get("tokens", "/v1/tokens", token=viewer.token)
        tokens = sorted(
            (TokenRead.model_validate(t) for t in found), key=lambda t: t.created_at, reverse=True
        )
        return render(
            request,
            "tokens.html",
            viewer=viewer,
            tokens=tokens,
            teams=await _teams(backend, viewer),
            users=await _users(backend, viewer),
            kinds=[k.value for k in TokenKind],
            permissions=[p.value for p in viewer.principal.permissions],
            all_permissions=[p.value for p in Permission],
            expiry_choices=EXPIRY_CHOICES,
            notice=_DONE.get(done),
            token_href=_token_href,
        )

    @router.post("/tokens", summary="Create a token")
    async def create_token(
        request: Request,
        viewer: CurrentViewer,
        csrf: Annotated[str, Form()] = "",
        kind: Annotated[TokenKind, Form()] = TokenKind.team,
        name: Annotated[str, Form(max_length=200)] = "",
        description: Annotated[str, Form(max_length=2000)] = "",
        team: Annotated[str, Form(max_length=128)] = "",
        user_id: Annotated[str, Form(max_length=128)] = "",
        permissions: Annotated[list[Permission] | None, Form()] = None,
        expires_in: Annotated[str, Form(max_length=32)] = "30 days",
    ) -> Response:
        check_csrf(viewer.session.csrf, csrf)
        body: dict[str, Any] = {
            "kind": kind.value,
            "name": name.strip(),
            "description": description.strip(),
            "expires_in_s": EXPIRY_CHOICES.get(expires_in, EXPIRY_CHOICES["30 days"]),
        }
        if kind is TokenKind.team:
            body["team"] = team or None
        elif kind is TokenKind.global_:
            body["permissions"] = [p.value for p in permissions or []]
        elif user_id:
            body["user_id"] = user_id
        created = await _backend(request).post(
            "tokens", "/v1/tokens", token=viewer.token, json=body
        )
        await _sessions(request).keep_once(viewer.session.id, created["secret"])
        return RedirectResponse(_token_href(created["token"]["id"]) + "?new=1", status_code=303)

    @router.get("/tokens/{token_id}", response_class=HTMLResponse, summary="One token")
    async def token_page(
        request: Request, viewer: CurrentViewer, token_id: str, new: str = ""
    ) -> Response:
        found = await _backend(request).get(
            "tokens", "/v1/tokens/" + quote(token_id, safe=""), token=viewer.token
        )
        token = TokenRead.model_validate(found)
        secret = await _sessions(request).pop_once(viewer.session.id) if new else None
        return render(
            request,
            "token.html",
            viewer=viewer,
            token=token,
            secret=secret,
            just_made=bool(new),
            grace_choices=GRACE_CHOICES,
            href=_token_href(token_id),
            own=token.id == viewer.principal.token_id,
        )

    @router.post("/tokens/{token_id}/rotate", summary="Rotate a token")
    async def rotate_token(
        request: Request,
        viewer: CurrentViewer,
        token_id: str,
        csrf: Annotated[str, Form()] = "",
        grace: Annotated[str, Form(max_length=32)] = "none",
    ) -> Response:
        check_csrf(viewer.session.csrf, csrf)
        rotated = await _backend(request).post(
            "tokens",
            "/v1/tokens/" + quote(token_id, safe="") + "/rotate",
            token=viewer.token,
            json={"grace_s": GRACE_CHOICES.get(grace, 0)},
        )
        await _sessions(request).keep_once(viewer.session.id, rotated["secret"])
        return RedirectResponse(_token_href(token_id) + "?new=1", status_code=303)

    @router.get(
        "/tokens/{token_id}/revoke", response_class=HTMLResponse, summary="Confirm a revocation"
    )
    async def confirm_revoke(request: Request, viewer: CurrentViewer, token_id: str) -> Response:
        found = await _backend(request).get(
            "tokens", "/v1/tokens/" + quote(token_id, safe=""), token=viewer.token
        )
        return render(
            request,
            "revoke.html",
            viewer=viewer,
            token=TokenRead.model_validate(found),
            href=_token_href(token_id),
            own=found["id"] == viewer.principal.token_id,
        )

    @router.post("/tokens/{token_id}/revoke", summary="Revoke a token")
    async def revoke_token(
        request: Request, viewer: CurrentViewer, token_id: str, csrf: Annotated[str, Form()] = ""
    ) -> Response:
        check_csrf(viewer.session.csrf, csrf)
        await _backend(request).post(
            "tokens", "/v1/tokens/" + quote(token_id, safe="") + "/revoke", token=viewer.token
        )
        return RedirectResponse("/settings/tokens?done=revoked", status_code=303)


def _directory_pages(router: APIRouter) -> None:
    @router.get("/users", response_class=HTMLResponse, summary="Users (admins)")
    async def users_page(request: Request, viewer: CurrentViewer, done: str = "") -> Response:
        backend = _backend(request)
        found = await backend.get("tokens", "/v1/users", token=viewer.token)
        users = sorted((UserRead.model_validate(u) for u in found), key=lambda u: u.email)
        return render(
            request,
            "users.html",
            viewer=viewer,
            users=users,
            teams=await _teams(backend, viewer),
            roles=[r.value for r in Role],
            notice=_DONE.get(done),
        )

    @router.post("/users", summary="Create a user")
    async def create_user(
        request: Request,
        viewer: CurrentViewer,
        csrf: Annotated[str, Form()] = "",
        email: Annotated[str, Form(max_length=320)] = "",
        role: Annotated[Role, Form()] = Role.member,
        teams: Annotated[list[str] | None, Form()] = None,
    ) -> Response:
        check_csrf(viewer.session.csrf, csrf)
        await _backend(request).post(
            "tokens",
            "/v1/users",
            token=viewer.token,
            json={"email": email.strip(), "role": role.value, "teams": teams or []},
        )
        return RedirectResponse("/settings/users?done=user_created", status_code=303)

    @router.post("/users/{user_id}/deactivate", summary="Deactivate a user")
    async def deactivate_user(
        request: Request, viewer: CurrentViewer, user_id: str, csrf: Annotated[str, Form()] = ""
    ) -> Response:
        check_csrf(viewer.session.csrf, csrf)
        await _backend(request).post(
            "tokens", f"/v1/users/{quote(user_id, safe='')}/deactivate", token=viewer.token
        )
        return RedirectResponse("/settings/users?done=user_deactivated", status_code=303)

    @router.post("/users/{user_id}/role", summary="Change a user's role")
    async def set_role(
        request: Request,
        viewer: CurrentViewer,
        user_id: str,
        csrf: Annotated[str, Form()] = "",
        role: Annotated[Role, Form()] = Role.member,
    ) -> Response:
        check_csrf(viewer.session.csrf, csrf)
        await _backend(request).call(
            "tokens",
            "PUT",
            f"/v1/users/{quote(user_id, safe='')}/role",
            token=viewer.token,
            json={"role": role.value},
        )
        return RedirectResponse("/settings/users?done=role_changed", status_code=303)

    @router.get("/teams", response_class=HTMLResponse, summary="Teams")
    async def teams_page(request: Request, viewer: CurrentViewer, done: str = "") -> Response:
        found = await _backend(request).get("tokens", "/v1/teams", token=viewer.token)
        teams = sorted(TeamRead.model_validate(t).name for t in found)
        return render(request, "teams.html", viewer=viewer, teams=teams, notice=_DONE.get(done))

    @router.post("/teams", summary="Create a team")
    async def create_team(
        request: Request,
        viewer: CurrentViewer,
        csrf: Annotated[str, Form()] = "",
        name: Annotated[str, Form(max_length=128)] = "",
    ) -> Response:
        check_csrf(viewer.session.csrf, csrf)
        await _backend(request).post(
            "tokens", "/v1/teams", token=viewer.token, json={"name": name.strip()}
        )
        return RedirectResponse("/settings/teams?done=team_created", status_code=303)
