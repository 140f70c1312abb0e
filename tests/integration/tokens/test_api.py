"""The HTTP API against the real Redis: the authorisation matrix, introspection, rate limits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from services.tokens.app import create_app
from services.tokens.service import TokenService
from services.tokens.testing import issue_token
from shared.auth import Permission
from shared.settings.tokens import TokensSettings
from shared.tokens.validator import RedisTokenValidator, build_validator

pytestmark = [pytest.mark.redis]


@dataclass
class Api:
    app_validator: RedisTokenValidator
    http: httpx.AsyncClient

    async def call(self, token: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return await self.http.request(method, path, headers=headers, **kw)


@pytest.fixture
async def api(redis: Redis, settings: TokensSettings) -> AsyncIterator[Api]:
    validator = build_validator(settings, redis)
    await validator.start()
    app = create_app(service=TokenService(redis, settings), validator=validator, settings=settings)
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://tokens") as http:
        yield Api(validator, http)
    await validator.stop()


async def _snapshot(redis: Redis) -> dict[str, object]:
    """Every key and its serialised value, except ``last_used`` stamps (written by any use)."""
    names = [k.decode() if isinstance(k, bytes) else k for k in await redis.keys("*")]
    return {k: await redis.dump(k) for k in sorted(names) if not k.endswith(":last_used")}


async def test_authorisation_matrix(redis: Redis, settings: TokensSettings, api: Api) -> None:
    admin, _ = await issue_token(redis, settings)
    team_red, red = await issue_token(redis, settings, kind="team", team="red")
    team_blue, _ = await issue_token(redis, settings, kind="team", team="blue")
    member_blue, _ = await issue_token(redis, settings, kind="user", role="member", teams=["blue"])
    member_red, _ = await issue_token(redis, settings, kind="user", role="member", teams=["red"])
    viewer_red, _ = await issue_token(redis, settings, kind="user", role="viewer", teams=["red"])
    no_perm, _ = await issue_token(redis, settings, permissions=[Permission.audit_read])
    red_user = await api.call(
        admin, "POST", "/v1/users", json={"email": "r@x.io", "role": "member"}
    )
    assert red_user.status_code == 201, red_user.text
    red_user_id = red_user.json()["id"]
    token_id = red.token_id

    cells: dict[str, tuple[str, str, dict[str, Any]]] = {
        "create-global": (
            "POST",
            "/v1/tokens",
            {"json": {"kind": "global", "name": "g", "permissions": ["alerts:read"]}},
        ),
        "create-team-red": (
            "POST",
            "/v1/tokens",
            {"json": {"kind": "team", "name": "t", "team": "red"}},
        ),
        "create-user-other": (
            "POST",
            "/v1/tokens",
            {"json": {"kind": "user", "name": "u", "user_id": red_user_id}},
        ),
        "show-red-token": ("GET", f"/v1/tokens/{token_id}", {}),
        "rotate-red-token": ("POST", f"/v1/tokens/{token_id}/rotate", {"json": {}}),
        "revoke-red-token": ("POST", f"/v1/tokens/{token_id}/revoke", {}),
        "introspect": ("POST", "/v1/tokens/introspect", {"data": {"token": team_red}}),
        "list-tokens": ("GET", "/v1/tokens", {}),
        "create-team": ("POST", "/v1/teams", {"json": {"name": "green"}}),
        "list-teams": ("GET", "/v1/teams", {}),
        "create-user": ("POST", "/v1/users", {"json": {"email": "n@x.io", "role": "viewer"}}),
        "list-users": ("GET", "/v1/users", {}),
        "show-user": ("GET", f"/v1/users/{red_user_id}", {}),
        "deactivate-user": ("POST", f"/v1/users/{red_user_id}/deactivate", {}),
        "set-role": ("PUT", f"/v1/users/{red_user_id}/role", {"json": {"role": "viewer"}}),
    }
    everything = set(cells)
    team_cells = {"list-teams"}  # team tokens: rules:read, nothing in this service beyond it
    member_cells = {"list-tokens", "introspect", "list-teams"}
    allowed: dict[str, set[str]] = {
        "team-own": team_cells,
        "team-other": team_cells,
        "member-other-team": member_cells,
        "member-own-team": member_cells
        | {"create-team-red", "show-red-token", "rotate-red-token", "revoke-red-token"},
        "viewer-own-team": {"list-teams"},
        "global-without-permission": set(),
    }
    tokens = {
        "team-own": team_red,
        "team-other": team_blue,
        "member-other-team": member_blue,
        "member-own-team": member_red,
        "viewer-own-team": viewer_red,
        "global-without-permission": no_perm,
    }
    wrong: list[tuple[str, str, object]] = []
    for who, token in tokens.items():
        for cell in sorted(everything - allowed[who]):
            before = await _snapshot(redis)
            method, path, kw = cells[cell]
            response = await api.call(token, method, path, **kw)
            if response.status_code != 403 or response.json()["code"] != "forbidden":
                wrong.append((who, cell, response.status_code))
            elif await _snapshot(redis) != before:
                wrong.append((who, cell, "changed state"))
        # Revoking is allowed too but would end the red token; the admin pass below does it.
        for cell in sorted(allowed[who] - {"revoke-red-token"}):
            method, path, kw = cells[cell]
            response = await api.call(token, method, path, **kw)
            if response.status_code >= 400:
                wrong.append((who, cell, response.status_code))
    assert wrong == []

    # An org-wide admin may do every cell (revoke last: it ends the red token).
    for cell in [*sorted(everything - {"revoke-red-token"}), "revoke-red-token"]:
        method, path, kw = cells[cell]
        response = await api.call(admin, method, path, **kw)
        assert response.status_code < 400, (cell, response.text)


async def test_member_manages_own_team_tokens_only(
    redis: Redis, settings: TokensSettings, api: Api
) -> None:
    member, _ = await issue_token(redis, settings, kind="user", role="member", teams=["red"])
    created = await api.call(
        member, "POST", "/v1/tokens", json={"kind": "team", "name": "ci", "team": "red"}
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("ayt_")
    assert body["token"]["team"] == "red"
    token_id = body["token"]["id"]
    listed = (await api.call(member, "GET", "/v1/tokens")).json()
    assert token_id in {t["id"] for t in listed}
    rotated = await api.call(member, "POST", f"/v1/tokens/{token_id}/rotate", json={"grace_s": 60})
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != body["secret"]
    revoked = await api.call(member, "POST", f"/v1/tokens/{token_id}/revoke")
    assert revoked.json()["status"] == "revoked"
    # The member's own user token, no more than its role.
    mine = await api.call(member, "POST", "/v1/tokens", json={"kind": "user", "name": "me"})
    assert mine.status_code == 201


@pytest.mark.parametrize("content", ["form", "json"])
async def test_introspection(
    redis: Redis, settings: TokensSettings, api: Api, content: str
) -> None:
    admin, _ = await issue_token(redis, settings)
    subject, principal = await issue_token(redis, settings, kind="team", team="red")
    send = {"data": {"token": subject}} if content == "form" else {"json": {"token": subject}}
    active = (await api.call(admin, "POST", "/v1/tokens/introspect", **send)).json()
    assert active["active"] is True
    assert active["token_id"] == principal.token_id
    assert (active["kind"], active["team"], active["token_type"]) == ("team", "red", "Bearer")
    assert set(active["scope"].split()) == {p.value for p in principal.permissions}
    assert active["exp"] > active["iat"]
    assert subject not in str(active)
    await api.call(admin, "POST", f"/v1/tokens/{principal.token_id}/revoke")
    inactive = (await api.call(admin, "POST", "/v1/tokens/introspect", **send)).json()
    assert inactive == {
        **dict.fromkeys(active, None),
        "active": False,
        "inactive_reason": "token_revoked",
    }
    garbage = await api.call(admin, "POST", "/v1/tokens/introspect", data={"token": "nope"})
    assert garbage.json()["inactive_reason"] == "token_malformed"


async def test_failed_authentication_is_rate_limited_per_client_across_processes(
    redis: Redis, settings: TokensSettings
) -> None:
    limited = settings.model_copy(
        update={
            "auth_fail_limit": 3,
            "auth_fail_window_s": 60,
            "trusted_proxy_header": "X-Forwarded-For",
            "trusted_proxies": ["10.0.0.0/8"],
        }
    )
    admin, _ = await issue_token(redis, limited)
    # Two app instances, as two processes behind one proxy: the count lives in Redis.
    apps = [
        create_app(
            service=TokenService(redis, limited),
            validator=build_validator(limited, redis),
            settings=limited,
        )
        for _ in range(2)
    ]

    def via_proxy(app: FastAPI, client_ip: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=("10.0.0.2", 5000))
        return httpx.AsyncClient(
            transport=transport,
            base_url="http://tokens",
            headers={"x-forwarded-for": f"203.0.113.77, {client_ip}"},  # left part forged
        )

    bad = {"authorization": "Bearer ayg_" + "A" * 52}
    good = {"authorization": f"Bearer {admin}"}
    async with (
        via_proxy(apps[0], "198.51.100.9") as attacker_a,
        via_proxy(apps[1], "198.51.100.9") as attacker_b,
        via_proxy(apps[1], "198.51.100.10") as bystander,
    ):
        codes = [(await attacker_a.get("/v1/tokens", headers=bad)).status_code for _ in range(2)]
        codes.append((await attacker_b.get("/v1/tokens", headers=bad)).status_code)
        assert codes == [401, 401, 401]
        for attacker in (attacker_a, attacker_b):  # blocked in both processes, even when right
            blocked = await attacker.get("/v1/tokens", headers=good)
            assert blocked.status_code == 429
            assert blocked.json()["code"] == "rate_limited"
            assert blocked.json()["context"]["retry_after_s"] > 0
        # Another client behind the same proxy is not locked out.
        assert (await bystander.get("/v1/tokens", headers=good)).status_code == 200
    keys = [k async for k in redis.scan_iter(match="alertyard:authfail*")]
    assert keys  # the moving window is in Redis
    assert not any(b"ayg_" in key for key in keys)  # keyed by address, never by token


async def test_unauthenticated_requests_get_401_with_stable_codes(
    redis: Redis, settings: TokensSettings, api: Api
) -> None:
    raw, principal = await issue_token(redis, settings)
    assert (await api.call(None, "GET", "/v1/tokens")).status_code == 401
    malformed = await api.call(raw[:-1], "GET", "/v1/tokens")
    assert (malformed.status_code, malformed.json()["code"]) == (401, "token_malformed")
    await TokenService(redis, settings).revoke_token(token_id=principal.token_id, actor=None)
    revoked = await api.call(raw, "GET", "/v1/tokens")
    assert (revoked.status_code, revoked.json()["code"]) == (401, "token_revoked")
    assert raw not in revoked.text
