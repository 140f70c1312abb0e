"""``alertyard tokens|teams|users|admin`` commands (the token service's HTTP API; bootstrap
talks to Redis directly because no token exists yet)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from services.cli._client import (
    ApiClient,
    JsonOption,
    TokenOption,
    console,
    dump_model,
    fail,
    print_json,
    print_model,
    print_table,
)
from services.tokens.models import IntrospectionResponse, TeamRead, TokenRead, TokenSecret, UserRead
from shared import durations

__all__ = ["parse_duration", "register"]

tokens_app = typer.Typer(help="Create, list, rotate and revoke API tokens.", no_args_is_help=True)
teams_app = typer.Typer(help="Teams (token scopes and routing destinations).", no_args_is_help=True)
users_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
admin_app = typer.Typer(help="One-off administration.", no_args_is_help=True)

_TOKEN_COLUMNS = ["id", "kind", "name", "status", "team", "user_id", "expires_at", "last_used_at"]


def parse_duration(text: str) -> int:
    """``90``, ``45s``, ``15m``, ``1h``, ``30d``, ``2w`` -> seconds (:mod:`shared.durations`)."""
    try:
        return int(durations.parse_duration(text).total_seconds())
    except durations.InvalidDurationError as exc:
        raise typer.BadParameter(str(exc)) from None


def _show_secret(body: TokenSecret, as_json: bool) -> None:
    if as_json:
        print_model(body)
        return
    token = body.token
    console.print(f"[bold]{token.kind.value} token {token.id}[/] ({token.name})")
    console.print(f"expires {token.expires_at.isoformat()}")
    console.print("secret (shown once, store it now):")
    console.print(body.secret, soft_wrap=True, highlight=False)


# -- tokens -------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    kind: str = typer.Option(..., "--kind", help="global | team | user"),
    name: str = typer.Option(..., "--name"),
    team: str | None = typer.Option(None, "--team", help="Team tokens: the team."),
    user: str | None = typer.Option(None, "--user", help="User tokens: user id (default: you)."),
    permission: Annotated[
        list[str] | None,
        typer.Option("--permission", help="Global tokens: a permission to grant (repeat)."),
    ] = None,
    expires_in: str | None = typer.Option(None, "--expires-in", help="e.g. 30d, 12h"),
    description: str = typer.Option("", "--description"),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a token; its secret is printed once."""
    payload: dict[str, Any] = {"kind": kind, "name": name, "description": description}
    if team:
        payload["team"] = team
    if user:
        payload["user_id"] = user
    if permission:
        payload["permissions"] = permission
    if expires_in:
        payload["expires_in_s"] = parse_duration(expires_in)
    client = ApiClient("tokens", token)
    _show_secret(client.typed(TokenSecret, "POST", "/v1/tokens", json=payload), as_json)


@tokens_app.command("list")
def tokens_list(token: str | None = TokenOption, as_json: bool = JsonOption) -> None:
    """Tokens you may see (never their secrets)."""
    rows = ApiClient("tokens", token).typed_list(TokenRead, "GET", "/v1/tokens")
    if as_json:
        print_model(rows)
    else:
        print_table([dump_model(r) for r in rows], _TOKEN_COLUMNS, title="tokens")


@tokens_app.command("show")
def tokens_show(
    token_id: str = typer.Argument(...),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """One token's record."""
    row = ApiClient("tokens", token).typed(TokenRead, "GET", f"/v1/tokens/{token_id}")
    if as_json:
        print_model(row)
    else:
        for key, value in dump_model(row).items():
            console.print(f"[bold]{key}[/]: {value}", highlight=False)


@tokens_app.command("rotate")
def tokens_rotate(
    token_id: str = typer.Argument(...),
    grace: str = typer.Option("0", "--grace", help="How long the old secret keeps working."),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Issue a new secret; the old one works for --grace (at most 24h)."""
    body = {"grace_s": parse_duration(grace)}
    client = ApiClient("tokens", token)
    path = f"/v1/tokens/{token_id}/rotate"
    _show_secret(client.typed(TokenSecret, "POST", path, json=body), as_json)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: str = typer.Argument(...),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Revoke a token; every service rejects it within a second."""
    row = ApiClient("tokens", token).typed(TokenRead, "POST", f"/v1/tokens/{token_id}/revoke")
    print_model(row) if as_json else console.print(f"revoked {row.id} ({row.name})")


@tokens_app.command("introspect")
def tokens_introspect(
    subject: str = typer.Argument(..., help="The token to inspect."),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """RFC 7662-style introspection of a token."""
    client = ApiClient("tokens", token)
    body = client.typed(
        IntrospectionResponse, "POST", "/v1/tokens/introspect", data={"token": subject}
    )
    if as_json:
        print_model(body)
    else:
        for key, value in dump_model(body).items():
            if value is not None:
                console.print(f"[bold]{key}[/]: {value}", highlight=False)


# -- teams and users ----------------------------------------------------------------------


@teams_app.command("create")
def teams_create(
    name: str = typer.Argument(...), token: str | None = TokenOption, as_json: bool = JsonOption
) -> None:
    """Create a team."""
    row = ApiClient("tokens", token).typed(TeamRead, "POST", "/v1/teams", json={"name": name})
    print_model(row) if as_json else console.print(f"created team {row.name}")


@teams_app.command("list")
def teams_list(token: str | None = TokenOption, as_json: bool = JsonOption) -> None:
    """All teams."""
    rows = ApiClient("tokens", token).typed_list(TeamRead, "GET", "/v1/teams")
    if as_json:
        print_model(rows)
    else:
        print_table([dump_model(r) for r in rows], ["name"], title="teams")


@users_app.command("create")
def users_create(
    email: str = typer.Argument(...),
    role: str = typer.Option(..., "--role", help="owner | admin | member | viewer"),
    team: Annotated[
        list[str] | None, typer.Option("--team", help="A team the user belongs to (repeat).")
    ] = None,
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a user."""
    body = {"email": email, "role": role, "teams": team or []}
    row = ApiClient("tokens", token).typed(UserRead, "POST", "/v1/users", json=body)
    print_model(row) if as_json else console.print(f"created user {row.id} ({row.email})")


@users_app.command("list")
def users_list(token: str | None = TokenOption, as_json: bool = JsonOption) -> None:
    """All users."""
    rows = ApiClient("tokens", token).typed_list(UserRead, "GET", "/v1/users")
    columns = ["id", "email", "role", "teams", "active"]
    if as_json:
        print_model(rows)
    else:
        print_table([dump_model(r) for r in rows], columns, title="users")


@users_app.command("deactivate")
def users_deactivate(
    user_id: str = typer.Argument(...), token: str | None = TokenOption, as_json: bool = JsonOption
) -> None:
    """Deactivate a user: their user tokens stop working at once."""
    path = f"/v1/users/{user_id}/deactivate"
    row = ApiClient("tokens", token).typed(UserRead, "POST", path)
    print_model(row) if as_json else console.print(f"deactivated {row.id} ({row.email})")


@users_app.command("set-role")
def users_set_role(
    user_id: str = typer.Argument(...),
    role: str = typer.Argument(..., help="owner | admin | member | viewer"),
    token: str | None = TokenOption,
    as_json: bool = JsonOption,
) -> None:
    """Change a user's role: their user tokens follow at once."""
    path = f"/v1/users/{user_id}/role"
    row = ApiClient("tokens", token).typed(UserRead, "PUT", path, json={"role": role})
    print_model(row) if as_json else console.print(f"{row.id} is now {row.role.value}")


# -- bootstrap ----------------------------------------------------------------------------


@admin_app.command("bootstrap")
def admin_bootstrap(
    email: str = typer.Option(..., "--email", help="The first owner's email."),
    as_json: bool = JsonOption,
) -> None:
    """Create the first owner and print one user token (refuses to run twice).

    Talks to Redis directly (ALERTYARD_REDIS_URL, ALERTYARD_TOKENS_HMAC_SECRET).
    """
    from services.tokens.errors import AlreadyBootstrappedError
    from services.tokens.service import TokenService
    from shared.redis import make_redis
    from shared.settings.tokens import load

    async def bootstrap() -> dict[str, Any]:
        settings = load()
        redis = make_redis(settings.redis_url)
        try:
            user, created = await TokenService(redis, settings).bootstrap_owner(email=email)
        finally:
            await redis.aclose()
        return {
            "user": user.model_dump(mode="json"),
            "secret": created.raw,
            "token": created.token.model_dump(mode="json"),
        }

    try:
        body = asyncio.run(bootstrap())
    except AlreadyBootstrappedError:
        fail("alertyard is already bootstrapped; ask an owner for a token")
    except OSError as exc:
        fail(f"cannot reach Redis ({type(exc).__name__}); is the stack up? (make run)")
    if as_json:
        print_json(body)
        return
    console.print(f"owner {body['user']['id']} ({body['user']['email']}) created")
    _show_secret(TokenSecret.model_validate(body), as_json=False)
    console.print("export ALERTYARD_TOKEN=<the secret above> to use it with this CLI")


def register(app: typer.Typer) -> None:
    """Add this domain's commands to ``app``."""
    app.add_typer(tokens_app, name="tokens")
    app.add_typer(teams_app, name="teams")
    app.add_typer(users_app, name="users")
    app.add_typer(admin_app, name="admin")
