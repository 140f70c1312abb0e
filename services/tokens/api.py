"""HTTP API of the token service (mounted by :func:`services.tokens.app.create_app`).

Every endpoint is authorised by a bearer token with the permission named in its summary; the
service layer then applies the scope rules (own team, own user, no rights beyond the caller's).
Failed authentication is rate limited per source IP (see ``shared.http_auth``).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from services.tokens.models import (
    CreatedToken,
    IntrospectionResponse,
    TeamRead,
    TokenRead,
    TokenSecret,
    UserRead,
)
from services.tokens.service import TokenService
from shared.auth import Permission, Principal, TokenKind
from shared.durations import WholeSeconds
from shared.errors import UnauthenticatedError, ValidationFailedError
from shared.http_auth import require
from shared.logging import get_logger
from shared.tokens.permissions import Role
from shared.tokens.validator import RedisTokenValidator

__all__ = ["add_routes"]

log = get_logger(__name__)

_STRICT = ConfigDict(frozen=True, extra="forbid")


class TokenCreate(BaseModel):
    model_config = _STRICT

    kind: TokenKind
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=1000)
    permissions: list[Permission] | None = None
    """Global tokens only: the subset to grant (the caller must hold each)."""
    team: str | None = None
    """Team tokens only."""
    user_id: str | None = None
    """User tokens only; defaults to the caller's user."""
    expires_in_s: WholeSeconds | None = Field(default=None, ge=60)
    """Defaults to the server's default TTL; capped by its maximum."""


class TokenRotate(BaseModel):
    model_config = _STRICT

    grace_s: WholeSeconds = Field(default=0, ge=0, le=24 * 3600)
    """How long the old secret keeps working (at most 24 h)."""


class TeamCreate(BaseModel):
    model_config = _STRICT

    name: str


class UserCreate(BaseModel):
    model_config = _STRICT

    email: str
    role: Role
    teams: list[str] = []


class RoleChange(BaseModel):
    model_config = _STRICT

    role: Role


def _secret(created: CreatedToken) -> TokenSecret:
    return TokenSecret(secret=created.raw, token=created.token)


# Module level so FastAPI can resolve them from the endpoints' (postponed) annotations.
TokensReader = Annotated[Principal, Depends(require(Permission.tokens_read))]
TokensWriter = Annotated[Principal, Depends(require(Permission.tokens_write))]
UsersWriter = Annotated[Principal, Depends(require(Permission.users_write))]
TeamsWriter = Annotated[Principal, Depends(require(Permission.teams_write))]
RulesReader = Annotated[Principal, Depends(require(Permission.rules_read))]


def add_routes(app: FastAPI, service: TokenService, validator: RedisTokenValidator) -> None:
    """Mount the token, team and user endpoints on ``app``."""
    _token_routes(app, service, validator)
    _directory_routes(app, service)


def _token_routes(app: FastAPI, service: TokenService, validator: RedisTokenValidator) -> None:

    @app.post("/v1/tokens", status_code=201, tags=["tokens"], summary="Create (tokens:write)")
    async def create_token(body: TokenCreate, actor: TokensWriter) -> TokenSecret:
        created = await service.create_token(
            kind=body.kind,
            name=body.name,
            description=body.description,
            actor=actor,
            permissions=body.permissions,
            team=body.team,
            user_id=body.user_id,
            expires_in_s=body.expires_in_s,
        )
        return _secret(created)

    @app.get("/v1/tokens", tags=["tokens"], summary="List visible tokens (tokens:read)")
    async def list_tokens(actor: TokensReader) -> list[TokenRead]:
        return await service.list_tokens(actor=actor)

    @app.post(
        "/v1/tokens/introspect",
        tags=["tokens"],
        summary="RFC 7662-style introspection (tokens:read)",
        description="Body: form field `token` (application/x-www-form-urlencoded) or JSON "
        '`{"token": ...}`. Inactive tokens answer `{"active": false, "inactive_reason": code}`.',
    )
    async def introspect(request: Request, actor: TokensReader) -> IntrospectionResponse:
        raw = await _token_from_body(request)
        try:
            found = await validator.inspect(raw)
        except UnauthenticatedError as exc:
            if exc.retriable:
                raise
            return IntrospectionResponse(active=False, inactive_reason=exc.code)
        principal = found.principal
        permissions = sorted(principal.permissions)
        return IntrospectionResponse(
            active=True,
            token_id=principal.token_id,
            kind=principal.kind,
            permissions=permissions,
            scope=" ".join(p.value for p in permissions),
            team=principal.team,
            teams=sorted(principal.teams),
            user_id=principal.user_id,
            exp=int(found.expires_at.timestamp()),
            iat=int(found.issued_at.timestamp()),
            token_type="Bearer",  # noqa: S106  # RFC 7662 token_type value, not a secret
        )

    @app.get("/v1/tokens/{token_id}", tags=["tokens"], summary="Show one token (tokens:read)")
    async def get_token(token_id: str, actor: TokensReader) -> TokenRead:
        return await service.get_token(token_id=token_id, actor=actor)

    @app.post("/v1/tokens/{token_id}/rotate", tags=["tokens"], summary="New secret (tokens:write)")
    async def rotate_token(token_id: str, body: TokenRotate, actor: TokensWriter) -> TokenSecret:
        created = await service.rotate_token(token_id=token_id, actor=actor, grace_s=body.grace_s)
        return _secret(created)

    @app.post("/v1/tokens/{token_id}/revoke", tags=["tokens"], summary="Revoke (tokens:write)")
    async def revoke_token(token_id: str, actor: TokensWriter) -> TokenRead:
        return await service.revoke_token(token_id=token_id, actor=actor)


def _directory_routes(app: FastAPI, service: TokenService) -> None:

    @app.post("/v1/teams", status_code=201, tags=["teams"], summary="Create (teams:write)")
    async def create_team(body: TeamCreate, actor: TeamsWriter) -> TeamRead:
        return await service.create_team(name=body.name, actor=actor)

    @app.get("/v1/teams", tags=["teams"], summary="List (rules:read)")
    async def list_teams(_: RulesReader) -> list[TeamRead]:
        return await service.list_teams()

    @app.post("/v1/users", status_code=201, tags=["users"], summary="Create (users:write)")
    async def create_user(body: UserCreate, actor: UsersWriter) -> UserRead:
        return await service.create_user(
            email=body.email, role=body.role, teams=body.teams, actor=actor
        )

    @app.get("/v1/users", tags=["users"], summary="List (users:write)")
    async def list_users(_: UsersWriter) -> list[UserRead]:
        return await service.list_users()

    @app.get("/v1/users/{user_id}", tags=["users"], summary="Show (users:write)")
    async def get_user(user_id: str, _: UsersWriter) -> UserRead:
        return await service.get_user(user_id=user_id)

    @app.post("/v1/users/{user_id}/deactivate", tags=["users"], summary="Deactivate (users:write)")
    async def deactivate_user(user_id: str, actor: UsersWriter) -> UserRead:
        return await service.deactivate_user(user_id=user_id, actor=actor)

    @app.put("/v1/users/{user_id}/role", tags=["users"], summary="Change role (users:write)")
    async def set_role(user_id: str, body: RoleChange, actor: UsersWriter) -> UserRead:
        return await service.set_role(user_id=user_id, role=body.role, actor=actor)


async def _token_from_body(request: Request) -> str:
    """The ``token`` parameter, from a form body (RFC 7662) or a JSON body."""
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    token: object = None
    if content_type.startswith("application/json"):
        try:
            parsed = await request.json()
        except ValueError:
            parsed = None
        token = parsed.get("token") if isinstance(parsed, dict) else None
    else:
        values = parse_qs(body.decode("utf-8", "replace")).get("token")
        token = values[0] if values else None
    if not isinstance(token, str) or not token:
        raise ValidationFailedError("send the token to introspect in the 'token' field")
    return token
