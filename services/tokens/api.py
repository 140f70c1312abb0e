"""HTTP API of the token service (mounted by :func:`services.tokens.app.create_app`).

Every endpoint is authorised by a bearer token with the permission named in its summary; the
service layer then applies the scope rules (own team, own user, no rights beyond the caller's).
Failed authentication is rate limited per source IP (see ``shared.http_auth``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from services.tokens.directory import EMAIL_RE
from services.tokens.models import (
    CreatedToken,
    IntrospectionResponse,
    TeamRead,
    TokenRead,
    TokenSecret,
    UserRead,
)
from services.tokens.service import TokenService
from shared.api_errors import error_responses
from shared.auth import Permission, Principal, TokenKind
from shared.errors import UnauthenticatedError, ValidationFailedError
from shared.http_auth import require
from shared.logging import get_logger
from shared.teams import TEAM_NAME_RE
from shared.tokens.permissions import Role
from shared.tokens.validator import RedisTokenValidator

__all__ = ["add_routes"]

log = get_logger(__name__)

_STRICT = ConfigDict(frozen=True, extra="forbid")

# Request bodies say in their schema what the service checks, so a body the document allows
# is a body the service takes (only state can still refuse it: 403, 404, 409).
TokenName = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")]
"""1-100 characters, not only blanks (the name is stored stripped)."""
Description = Annotated[str, StringConstraints(max_length=1000)]
TeamName = Annotated[str, StringConstraints(pattern=TEAM_NAME_RE.pattern)]
UserId = Annotated[str, StringConstraints(pattern=r"^usr_[0-9a-f]{16}$")]
Email = Annotated[str, StringConstraints(pattern=EMAIL_RE.pattern), Field(examples=["a@b.example"])]
"""Stored lower case."""


def _number_only(value: object) -> object:
    """JSON numbers only: ``"60"`` and ``true`` are not seconds (pydantic's lax mode would
    take them, while the schema says integer); ``60.0`` is, as JSON Schema says."""
    if isinstance(value, (str, bool)):
        raise ValueError("expected a whole number of seconds")  # a 422
    return value


NumberOnly = BeforeValidator(_number_only)
# The constraints come before the validator: after it, pydantic would not put them in the
# JSON schema.


class _TokenCreateBase(BaseModel):
    model_config = _STRICT

    name: TokenName
    description: Description = ""
    expires_in_s: Annotated[int, Field(ge=60), NumberOnly] | None = None
    """Defaults to the server's default TTL; at most its maximum (the document states it)."""


class GlobalTokenCreate(_TokenCreateBase):
    """An org-wide token with the permissions chosen here (the caller must hold each)."""

    kind: Literal[TokenKind.global_]
    permissions: list[Permission] = Field(min_length=1)


class TeamTokenCreate(_TokenCreateBase):
    """A token with the team permission set on one team."""

    kind: Literal[TokenKind.team]
    team: TeamName


class UserTokenCreate(_TokenCreateBase):
    """A token that follows its user's role and teams."""

    kind: Literal[TokenKind.user]
    user_id: UserId | None = None
    """Defaults to the caller's user."""


TokenCreate = Annotated[
    GlobalTokenCreate | TeamTokenCreate | UserTokenCreate, Field(discriminator="kind")
]


class TokenRotate(BaseModel):
    model_config = _STRICT

    grace_s: Annotated[int, Field(ge=0, le=24 * 3600), NumberOnly] = 0
    """How long the old secret keeps working (at most 24 h)."""


class TeamCreate(BaseModel):
    model_config = _STRICT

    name: TeamName


class UserCreate(BaseModel):
    model_config = _STRICT

    email: Email
    role: Role
    teams: list[TeamName] = []


class RoleChange(BaseModel):
    model_config = _STRICT

    role: Role


class IntrospectRequest(BaseModel):
    """RFC 7662: the token to look at (form field or JSON member ``token``)."""

    token: str = Field(min_length=1)


def _links(param: str, pointer: str, operations: dict[str, str]) -> dict[str, object]:
    """OpenAPI links from a created resource to the operations on it (the stateful fuzzer
    follows them; clients may too)."""
    return {
        name: {"operationId": op, "parameters": {param: f"$response.body#{pointer}"}}
        for name, op in operations.items()
    }


_TOKEN_LINKS = _links(
    "token_id",
    "/token/id",
    {"GetToken": "get_token", "RotateToken": "rotate_token", "RevokeToken": "revoke_token"},
)
_USER_LINKS = _links(
    "user_id",
    "/id",
    {"GetUser": "get_user", "SetRole": "set_role", "DeactivateUser": "deactivate_user"},
)

_INTROSPECT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": IntrospectRequest.model_json_schema()}
            for media in ("application/x-www-form-urlencoded", "application/json")
        },
    }
}


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

    @app.post(
        "/v1/tokens",
        status_code=201,
        tags=["tokens"],
        summary="Create (tokens:write)",
        responses={**error_responses(404), 201: {"links": _TOKEN_LINKS}},
    )
    async def create_token(body: TokenCreate, actor: TokensWriter) -> TokenSecret:
        created = await service.create_token(
            kind=body.kind,
            name=body.name,
            description=body.description,
            actor=actor,
            permissions=getattr(body, "permissions", None),
            team=getattr(body, "team", None),
            user_id=getattr(body, "user_id", None),
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
        openapi_extra=_INTROSPECT_BODY,
        responses=error_responses(422),
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

    @app.post(
        "/v1/tokens/{token_id}/rotate",
        tags=["tokens"],
        summary="New secret (tokens:write)",
        responses={**error_responses(409), 200: {"links": _TOKEN_LINKS}},
    )
    async def rotate_token(token_id: str, body: TokenRotate, actor: TokensWriter) -> TokenSecret:
        created = await service.rotate_token(token_id=token_id, actor=actor, grace_s=body.grace_s)
        return _secret(created)

    @app.post("/v1/tokens/{token_id}/revoke", tags=["tokens"], summary="Revoke (tokens:write)")
    async def revoke_token(token_id: str, actor: TokensWriter) -> TokenRead:
        return await service.revoke_token(token_id=token_id, actor=actor)


def _directory_routes(app: FastAPI, service: TokenService) -> None:

    @app.post(
        "/v1/teams",
        status_code=201,
        tags=["teams"],
        summary="Create (teams:write)",
        responses=error_responses(409),
    )
    async def create_team(body: TeamCreate, actor: TeamsWriter) -> TeamRead:
        return await service.create_team(name=body.name, actor=actor)

    @app.get("/v1/teams", tags=["teams"], summary="List (rules:read)")
    async def list_teams(_: RulesReader) -> list[TeamRead]:
        return await service.list_teams()

    @app.post(
        "/v1/users",
        status_code=201,
        tags=["users"],
        summary="Create (users:write)",
        responses={**error_responses(404, 409), 201: {"links": _USER_LINKS}},
    )
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


def document_ttl_limit(app: FastAPI, max_ttl_s: int) -> None:
    """State this deployment's maximum token lifetime in the document: ``expires_in_s`` above
    it is refused (422), so the schema must say so."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        document = build()
        for name in ("GlobalTokenCreate", "TeamTokenCreate", "UserTokenCreate"):
            field = document["components"]["schemas"][name]["properties"]["expires_in_s"]
            for option in field.get("anyOf", [field]):
                if option.get("type") == "integer":
                    option["maximum"] = max_ttl_s
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
