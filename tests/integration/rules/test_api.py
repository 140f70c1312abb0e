"""The rules HTTP API with real tokens: permissions and team scoping, endpoint by endpoint."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from services.rules.control.api import build_rules_api
from services.rules.control.store import RulesStore
from services.tokens.testing import issue_token, test_settings
from shared.auth import Permission
from shared.http import install_error_handlers
from shared.outbox import outbox_key
from shared.tokens.validator import build_validator
from tests.integration.rules._fixtures import add_teams, simple_rule

pytestmark = pytest.mark.redis

RULES_YAML = """
rules:
  - name: payments-critical
    owner_team: payments
    scope: team
    destinations: [payments]
    condition_groups:
      - conditions:
          - {field: service, operator: is_one_of, values: [checkout, billing]}
          - {field: labels.env, operator: is_not_one_of, values: [staging]}
  - name: payments-batch
    owner_team: payments
    scope: team
    destinations: [payments]
    condition_groups:
      - conditions:
          - {field: service, operator: equals, value: batch}
  - name: search-index
    owner_team: search
    scope: team
    destinations: [search]
    condition_groups:
      - conditions:
          - {field: service, operator: is_one_of, values: [indexer]}
  - name: everything-else
    owner_team: platform
    fallback: true
    destinations: [platform]
"""


@dataclass
class Api:
    client: httpx.AsyncClient
    redis: Redis
    admin: dict[str, str]
    payments: dict[str, str]
    member: dict[str, str]
    reader: dict[str, str]
    payments_token_id: str

    async def snapshot(self) -> tuple[int, Any, int]:
        body = (await self.client.get("/v1/rules", headers=self.admin)).json()
        return body["version"], body["rules"], await self.redis.xlen(outbox_key("rules"))


@pytest.fixture
async def api(redis: Redis, redis_url: str) -> AsyncIterator[Api]:
    settings = test_settings(redis_url)
    await add_teams(redis)
    admin, _ = await issue_token(redis, settings, kind="global")
    payments, payments_principal = await issue_token(redis, settings, kind="team", team="payments")
    member, _ = await issue_token(redis, settings, kind="user", role="member", teams=["payments"])
    reader, _ = await issue_token(
        redis, settings, kind="global", permissions=[Permission.rules_read]
    )
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_rules_api())
    app.state.rules_store = RulesStore(redis)
    app.state.validator = build_validator(settings, redis)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        bearer = {
            name: {"authorization": f"Bearer {token}"}
            for name, token in {
                "admin": admin,
                "payments": payments,
                "member": member,
                "reader": reader,
            }.items()
        }
        result = await client.post(
            "/v1/rules/apply",
            content=RULES_YAML,
            headers={**bearer["admin"], "content-type": "application/yaml"},
        )
        assert result.status_code == 200, result.text
        yield Api(client, redis, **bearer, payments_token_id=payments_principal.token_id)


async def test_authentication_and_permissions(api: Api) -> None:
    assert (await api.client.get("/v1/rules")).status_code == 401
    listed = await api.client.get("/v1/rules", headers=api.reader)
    assert listed.status_code == 200
    assert [r["name"] for r in listed.json()["rules"]][:1] == ["payments-critical"]
    denied = await api.client.delete("/v1/rules/search-index", headers=api.reader)
    assert denied.status_code == 403
    assert denied.json()["code"] == "forbidden"


@pytest.mark.parametrize("who", ["payments", "member"])
async def test_team_scoping_endpoint_by_endpoint(api: Api, who: str) -> None:
    team = api.payments if who == "payments" else api.member
    before = await api.snapshot()
    forbidden: list[tuple[str, str, dict[str, Any]]] = [
        # create: owned by another team, or routing to another team
        ("POST", "/v1/rules", {"json": simple_rule("search-x", "search", "x")}),
        (
            "POST",
            "/v1/rules",
            {"json": {**simple_rule("payments-x", "payments", "x"), "destinations": ["search"]}},
        ),
        # create in front of another team's rule
        ("POST", "/v1/rules?position=0", {"json": simple_rule("payments-top", "payments", "t")}),
        # update another team's rule; hand own rule to another team
        ("PUT", "/v1/rules/search-index", {"json": simple_rule("search-index", "search", "y")}),
        (
            "PUT",
            "/v1/rules/payments-batch",
            {
                "json": {
                    **simple_rule("payments-batch", "payments", "b"),
                    "destinations": ["search"],
                }
            },
        ),
        # delete another team's rule
        ("DELETE", "/v1/rules/search-index", {}),
        # reorder other teams' rules among themselves
        (
            "POST",
            "/v1/rules/reorder",
            {
                "json": {
                    "rules": [
                        "payments-critical",
                        "payments-batch",
                        "everything-else",
                        "search-index",
                    ]
                }
            },
        ),
        # apply a file that changes another team's rule
        (
            "POST",
            "/v1/rules/apply",
            {"content": RULES_YAML.replace("values: [indexer]", "values: [crawler]")},
        ),
    ]
    for method, path, kwargs in forbidden:
        response = await api.client.request(method, path, headers=team, **kwargs)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "forbidden"
        assert await api.snapshot() == before, (method, path)

    # What the team may do: its own rules, routed to itself, without jumping other teams.
    created = await api.client.post(
        "/v1/rules", headers=team, json=simple_rule("payments-new", "payments", "n")
    )
    assert created.status_code == 201, created.text
    assert created.json()["rule"]["position"] == 4
    updated = await api.client.put(
        "/v1/rules/payments-batch",
        headers=team,
        json=simple_rule("payments-batch", "payments", "batch2"),
    )
    assert updated.status_code == 200, updated.text
    swapped = await api.client.post(
        "/v1/rules/reorder",
        headers=team,
        json={
            "rules": [
                "payments-batch",
                "payments-critical",
                "search-index",
                "everything-else",
                "payments-new",
            ]
        },
    )
    assert swapped.status_code == 200, swapped.text
    deleted = await api.client.delete("/v1/rules/payments-new", headers=team)
    assert deleted.status_code == 200
    assert deleted.json()["version"] == before[0] + 4


async def test_crud_conflict_and_validation_errors(api: Api) -> None:
    got = await api.client.get("/v1/rules/payments-critical", headers=api.reader)
    assert got.status_code == 200
    rule_id, version = got.json()["rule"]["id"], got.json()["version"]
    by_id = await api.client.get(f"/v1/rules/{rule_id}", headers=api.reader)
    assert by_id.json()["rule"]["name"] == "payments-critical"
    assert (await api.client.get("/v1/rules/nope", headers=api.reader)).status_code == 404

    stale = await api.client.delete(
        f"/v1/rules/{rule_id}?expected_version={version - 1}", headers=api.admin
    )
    assert stale.status_code == 409
    assert stale.json()["code"] == "version_conflict"

    bad = await api.client.post(
        "/v1/rules",
        headers=api.admin,
        json={
            "name": "bad",
            "owner_team": "payments",
            "destinations": ["payments"],
            "condition_groups": [
                {"conditions": [{"field": "service", "operator": "is_sort_of", "values": ["x"]}]}
            ],
        },
    )
    assert bad.status_code == 422
    body = bad.json()
    assert body["code"] == "invalid_rule"
    problem = body["context"]["problems"][0]
    assert problem["rule"] == "bad"
    assert problem["condition"] == "condition_groups[0].conditions[0]"
    assert "unknown operator" in problem["reason"]

    ghost = await api.client.post(
        "/v1/rules", headers=api.admin, json=simple_rule("ghosts-a", "ghosts", "x")
    )
    assert ghost.status_code == 422
    assert ghost.json()["code"] == "unknown_team"


async def test_apply_dry_run_diff_and_json(api: Api) -> None:
    edited = RULES_YAML.replace("values: [indexer]", "values: [indexer, crawler]")
    dry = await api.client.post("/v1/rules/apply?dry_run=true", headers=api.admin, content=edited)
    assert dry.status_code == 200
    assert dry.json()["applied"] is False
    assert dry.json()["diff_text"] == ["~ search-index: condition_groups"]
    assert (await api.snapshot())[0] == 1

    as_json = json.dumps(
        {"rules": json.loads(json.dumps(__import__("yaml").safe_load(edited)))["rules"]}
    )
    applied = await api.client.post(
        "/v1/rules/apply?expected_version=1",
        headers={**api.admin, "content-type": "application/json"},
        content=as_json,
    )
    assert applied.status_code == 200, applied.text
    assert applied.json()["version"] == 2
    broken = await api.client.post("/v1/rules/apply", headers=api.admin, content="rules: [")
    assert broken.status_code == 422
    assert broken.json()["code"] == "invalid_document"


async def test_explain_test_and_lint(api: Api) -> None:
    explained = await api.client.post(
        "/v1/rules/explain",
        headers=api.reader,
        json={
            "alert": {"service": "billing", "labels": {"env": "staging"}},
            "source": {"token_id": api.payments_token_id},
        },
    )
    assert explained.status_code == 200
    out = explained.json()
    assert out["teams"] == ["platform"]
    assert out["fallback"] is True
    assert out["ruleset_version"] == 1
    assert out["source"] == {
        "token_id": api.payments_token_id,
        "team": "payments",
        "owners": ["payments"],
    }
    conditions = out["evaluated"][0]["groups"][0]["conditions"]
    assert [c["result"] for c in conditions] == [True, False]
    assert [r["name"] for r in out["out_of_scope"]] == ["search-index"]

    # From a source nobody owns, the team rules are out of scope, each with its reason.
    unowned = await api.client.post(
        "/v1/rules/explain",
        headers=api.reader,
        json={"alert": {"service": "billing"}, "source": {"token_id": "tok_nobody"}},
    )
    out = unowned.json()
    assert out["teams"] == ["platform"]
    assert [r["name"] for r in out["evaluated"]] == ["everything-else"]
    assert [r["name"] for r in out["out_of_scope"]] == [
        "payments-critical",
        "payments-batch",
        "search-index",
    ]
    assert "owned by no team" in out["out_of_scope"][0]["reason"]

    tested = await api.client.post(
        "/v1/rules/test",
        headers=api.reader,
        json={
            "cases": [
                {
                    "name": "ok",
                    "alert": {"service": "indexer"},
                    "source": {"team": "search"},
                    "expect_teams": ["search"],
                },
                {"name": "bad", "alert": {"service": "indexer"}, "expect_teams": ["search"]},
            ]
        },
    )
    assert tested.status_code == 200
    assert tested.json()["passed"] is False
    assert [r["passed"] for r in tested.json()["results"]] == [True, False]

    linted = await api.client.post(
        "/v1/rules/lint",
        headers=api.reader,
        json={"rules": [simple_rule("a", "payments", "x"), simple_rule("b", "ghosts", "x")]},
    )
    kinds = [(f["rule"], f["kind"]) for f in linted.json()["findings"]]
    assert kinds == [("b", "shadowed"), ("b", "unknown_team")]
    assert linted.json()["ok"] is False
    # search has no team token and no source assigned: its team rule can never match.
    stored = await api.client.post("/v1/rules/lint", headers=api.reader)
    assert [(f["rule"], f["kind"]) for f in stored.json()["findings"]] == [
        ("search-index", "out_of_scope")
    ]

    bad_alert = await api.client.post(
        "/v1/rules/explain", headers=api.reader, json={"alert": {"severity": "apocalyptic"}}
    )
    assert bad_alert.status_code == 422
    assert bad_alert.json()["code"] == "invalid_alert"


async def test_source_assignments_reject_bad_input_with_4xx(api: Api) -> None:
    before = await api.snapshot()
    for path, body, status, code in [
        ("/v1/rules/sources/tok_x", {"teams": ["Not A Team"]}, 422, "invalid_request"),
        ("/v1/rules/sources/tok_x", {"teams": ["ghosts"]}, 422, "unknown_team"),
        ("/v1/rules/sources/bad%20id", {"teams": ["payments"]}, 422, "invalid_request"),
        ("/v1/rules/sources/tok_x", {"teams": "payments"}, 422, "invalid_request"),
    ]:
        response = await api.client.put(path, headers=api.admin, json=body)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert await api.snapshot() == before
    assigned = await api.client.put(
        "/v1/rules/sources/tok_x", headers=api.admin, json={"teams": ["payments", "payments"]}
    )
    assert assigned.json()["teams"] == ["payments"]
    # A file without a sources section leaves assignments alone; one with it replaces them.
    stored = (await api.client.get("/v1/rules", headers=api.admin)).json()
    assert stored["sources"] == {"tok_x": ["payments"]}
    reapplied = await api.client.post(
        "/v1/rules/apply", headers=api.admin, json={"rules": stored["rules"]}
    )
    assert reapplied.json()["applied"] is False
    cleared = await api.client.post(
        "/v1/rules/apply", headers=api.admin, json={"rules": stored["rules"], "sources": {}}
    )
    assert cleared.json()["diff"]["sources"] == [
        {"token_id": "tok_x", "before": ["payments"], "after": []}
    ]
