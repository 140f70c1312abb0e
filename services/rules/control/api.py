"""HTTP API of the routing rules (``/v1/rules``), mounted by the router app.

The app provides ``app.state.rules_store`` (:class:`RulesStore`) and ``app.state.validator``.
Reads need ``rules:read``, changes ``rules:write``; on top, a non-admin may only change rules
its teams own and that route only to its teams (see :mod:`.authz`), else 403 and no change.
Every change accepts ``?expected_version=N`` (409 when the ruleset moved on).

Tenancy (:mod:`services.rules.engine.scope`): a rule written without ``scope`` keeps its stored
scope, and a new one gets ``org`` from an admin, ``team`` from anyone else. ``/v1/rules/sources``
lists and (admins only) assigns alert sources (token ids) to teams.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Path, Query, Request, status
from pydantic import BaseModel, Field, StringConstraints

from services.rules.control.authz import default_scope, fill_scopes
from services.rules.control.schemas import (
    CaseReport,
    ChangeReport,
    Deleted,
    ExplainRequest,
    Explanation,
    LintFinding,
    LintReport,
    LintRequest,
    ReorderRequest,
    RuleEnvelope,
    RulesetDiff,
    RulesetDocument,
    RulesetRead,
    SourceChange,
    SourceRef,
    SourcesRead,
    TestRequest,
)
from services.rules.control.store import ChangeResult, RulesStore
from services.rules.engine.diff import render_diff
from services.rules.engine.documents import load_cases, load_document, parse_alert
from services.rules.engine.errors import InvalidDocumentError
from services.rules.engine.explain import explain, run_cases, source_of
from services.rules.engine.lint import lint
from services.rules.engine.model import ID_RE, TEAM_RE, Rule, Ruleset, parse_rule, parse_ruleset
from services.rules.engine.scope import AlertSource
from shared.api_errors import error_responses, request_body
from shared.auth import Permission, Principal
from shared.errors import ForbiddenError
from shared.http_auth import require

__all__ = ["build_rules_api"]

Reader = Annotated[Principal, Depends(require(Permission.rules_read))]
Writer = Annotated[Principal, Depends(require(Permission.rules_write))]
ExpectedVersion = Annotated[
    int | None,
    Query(ge=0, description="Fail with 409 unless the stored ruleset is at this version."),
]
RefPath = Annotated[str, Path(min_length=1, max_length=128, description="A rule's id or name.")]

# A rule as written: the engine's own Rule model (``id`` and ``position`` are ignored; the
# engine reads the body itself to answer invalid_rule with a problem per condition).
_RULE_BODY = request_body(Rule, name="RuleInput")
_RULE_LINKS = {
    name: {"operationId": op, "parameters": {"ref": "$response.body#/rule/id"}}
    for name, op in (
        ("GetRule", "get_rule"),
        ("UpdateRule", "update_rule"),
        ("DeleteRule", "delete_rule"),
    )
}


def _store(request: Request) -> RulesStore:
    store: RulesStore = request.app.state.rules_store
    return store


async def _candidate(request: Request, rules: list[dict[str, Any]] | None) -> Ruleset:
    """The ruleset to explain/test/lint against: ``rules`` if given, else the stored one."""
    if rules is not None:
        return parse_ruleset({"rules": rules})
    return await _store(request).get_ruleset()


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; the engine checks it (and answers ``invalid_rule``)."""
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise InvalidDocumentError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidDocumentError("a rule is a JSON object (name, owner_team, ...)")
    return data


TeamName = Annotated[str, StringConstraints(pattern=TEAM_RE.pattern)]


class SourceAssignment(BaseModel):
    """The teams that own the alerts one token publishes (empty: remove the assignment)."""

    teams: list[TeamName] = Field(max_length=64)


TokenIdPath = Annotated[str, Path(pattern=ID_RE.pattern, description="The producer's token id.")]


async def _source(request: Request, ref: SourceRef | None) -> AlertSource:
    """Who published the alert being explained (see :class:`SourceRef`)."""
    source = source_of(ref.model_dump() if ref is not None else None)
    if source.token_id is not None and source.team is None:
        return await _store(request).token_source(source.token_id)
    return source


def _admin_only(principal: Principal) -> None:
    """Source assignments decide whose team rules see which alerts: admins only, even when
    the change would be a no-op."""
    if not principal.is_admin:
        raise ForbiddenError("only admins assign alert sources to teams")


def _change_body(result: ChangeResult, *, dry_run: bool) -> ChangeReport:
    return ChangeReport(
        applied=result.applied,
        dry_run=dry_run,
        version=result.version,
        diff=RulesetDiff.model_validate(result.diff),
        diff_text=render_diff(result.diff),
    )


def build_rules_api() -> APIRouter:
    # Rules leave out unset optional fields, as in the YAML documents.
    router = APIRouter(prefix="/v1/rules", tags=["rules"])

    @router.get("", summary="List the rules in evaluation order", response_model_exclude_none=True)
    async def list_rules(request: Request, _: Reader) -> RulesetRead:
        ruleset = await _store(request).get_ruleset()
        sources = {token_id: list(teams) for token_id, teams in ruleset.sources.items()}
        return RulesetRead(
            version=ruleset.version, rules=list(ruleset.rules), sources=sources or None
        )

    @router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        summary="Create a rule",
        response_model_exclude_none=True,
        openapi_extra=_RULE_BODY,
        responses={201: {"links": _RULE_LINKS}},
    )
    async def create_rule(
        request: Request,
        principal: Writer,
        expected_version: ExpectedVersion = None,
        position: Annotated[
            int | None, Query(ge=0, description="Insert here (default: at the end).")
        ] = None,
    ) -> RuleEnvelope:
        body = await _json_object(request)
        raw = {k: v for k, v in body.items() if k not in ("id", "position")}
        rule = parse_rule({"scope": default_scope(principal).value, **raw})
        created, version = await _store(request).create_rule(
            rule, position=position, principal=principal, expected_version=expected_version
        )
        return RuleEnvelope(rule=created, version=version)

    @router.post(
        "/apply",
        summary="Apply a whole ruleset (YAML or JSON) with a diff",
        response_model_exclude_none=True,
        openapi_extra=request_body(RulesetDocument, media_types=("application/yaml",)),
        responses=error_responses(404),
    )
    async def apply_ruleset(
        request: Request,
        principal: Writer,
        dry_run: Annotated[bool, Query(description="Only compute the diff.")] = False,
        expected_version: ExpectedVersion = None,
    ) -> ChangeReport:
        data = load_document(await request.body())
        if not isinstance(data, dict) or "rules" not in data:
            raise InvalidDocumentError("send a mapping with a 'rules' list (YAML or JSON)")
        if not isinstance(data.get("sources", {}), dict):
            raise InvalidDocumentError("'sources' maps token ids to lists of teams")
        store = _store(request)
        if isinstance(data["rules"], list):
            data = {
                **data,
                "rules": fill_scopes(data["rules"], await store.get_ruleset(), principal),
            }
        result = await store.apply(
            parse_ruleset(data),
            principal=principal,
            expected_version=expected_version,
            dry_run=dry_run,
            replace_sources="sources" in data,
        )
        return _change_body(result, dry_run=dry_run)

    @router.post(
        "/reorder",
        summary="Put every rule in a new order",
        response_model_exclude_none=True,
        responses=error_responses(404),
    )
    async def reorder(
        request: Request,
        principal: Writer,
        body: ReorderRequest,
        expected_version: ExpectedVersion = None,
    ) -> ChangeReport:
        result = await _store(request).reorder(
            body.rules, principal=principal, expected_version=expected_version
        )
        return _change_body(result, dry_run=False)

    @router.post("/explain", summary="Which rules an alert matches, condition by condition")
    async def explain_alert(request: Request, _: Reader, body: ExplainRequest) -> Explanation:
        alert = parse_alert(body.alert)
        ruleset = await _candidate(request, body.rules)
        explanation = explain(ruleset, alert, await _source(request, body.source))
        return Explanation.model_validate(explanation)

    @router.post("/test", summary="Check alerts against expected teams (like amtool test)")
    async def run_test_cases(request: Request, _: Reader, body: TestRequest) -> CaseReport:
        cases = load_cases({"cases": [c.model_dump(exclude_none=True) for c in body.cases]})
        ruleset = await _candidate(request, body.rules)
        return CaseReport.model_validate(run_cases(ruleset, cases))

    @router.post("/lint", summary="Static checks: dead, shadowed, unreachable rules, teams")
    async def lint_rules(
        request: Request, _: Reader, body: Annotated[LintRequest | None, Body()] = None
    ) -> LintReport:
        ruleset = await _candidate(request, body.rules if body is not None else None)
        store = _store(request)
        findings = lint(
            ruleset,
            teams=await store.known_teams(),
            source_owners=await store.teams_with_sources(ruleset),
        )
        return LintReport(
            ok=not any(f["severity"] == "error" for f in findings),
            ruleset_version=ruleset.version,
            findings=[LintFinding.model_validate(f) for f in findings],
        )

    @router.get("/sources", summary="Alert sources (token ids) assigned to teams")
    async def list_sources(request: Request, _: Reader) -> SourcesRead:
        ruleset = await _store(request).get_ruleset()
        sources = {token_id: list(teams) for token_id, teams in ruleset.sources.items()}
        return SourcesRead(version=ruleset.version, sources=sources)

    @router.put("/sources/{token_id}", summary="Assign a source to teams (admins only)")
    async def assign_source(
        request: Request,
        principal: Writer,
        token_id: TokenIdPath,
        body: SourceAssignment,
        expected_version: ExpectedVersion = None,
    ) -> SourceChange:
        _admin_only(principal)
        result = await _store(request).assign_source(
            token_id, body.teams, principal=principal, expected_version=expected_version
        )
        return SourceChange(
            **dict(_change_body(result, dry_run=False)),
            token_id=token_id,
            teams=list(result.after.sources.get(token_id, ())),
        )

    @router.delete("/sources/{token_id}", summary="Remove a source's assignment (admins only)")
    async def unassign_source(
        request: Request,
        principal: Writer,
        token_id: TokenIdPath,
        expected_version: ExpectedVersion = None,
    ) -> SourceChange:
        _admin_only(principal)
        result = await _store(request).assign_source(
            token_id, [], principal=principal, expected_version=expected_version
        )
        return SourceChange(
            **dict(_change_body(result, dry_run=False)), token_id=token_id, teams=[]
        )

    @router.get("/{ref}", summary="One rule by id or name", response_model_exclude_none=True)
    async def get_rule(request: Request, _: Reader, ref: RefPath) -> RuleEnvelope:
        rule, version = await _store(request).get_rule(ref)
        return RuleEnvelope(rule=rule, version=version)

    @router.put(
        "/{ref}",
        summary="Replace a rule (keeps its id and position)",
        response_model_exclude_none=True,
        openapi_extra=_RULE_BODY,
    )
    async def update_rule(
        request: Request,
        principal: Writer,
        ref: RefPath,
        expected_version: ExpectedVersion = None,
    ) -> RuleEnvelope:
        body = await _json_object(request)
        raw = {k: v for k, v in body.items() if k not in ("id", "position")}
        if "scope" not in raw:  # unchanged unless stated
            stored, _ = await _store(request).get_rule(ref)
            raw["scope"] = stored.scope.value
        rule = parse_rule(raw)
        updated, version = await _store(request).update_rule(
            ref, rule, principal=principal, expected_version=expected_version
        )
        return RuleEnvelope(rule=updated, version=version)

    @router.delete("/{ref}", summary="Delete a rule")
    async def delete_rule(
        request: Request, principal: Writer, ref: RefPath, expected_version: ExpectedVersion = None
    ) -> Deleted:
        version = await _store(request).delete_rule(
            ref, principal=principal, expected_version=expected_version
        )
        return Deleted(deleted=ref, version=version)

    return router
