"""Rules: the ordered ruleset rendered readably, enabling/disabling a rule where the viewer
may, and an explain playground (paste alert JSON, see each condition's result)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.backend import ApiError, Backend
from services.console.security import check_csrf
from services.console.viewer import CurrentViewer, Viewer
from services.console.views import render
from services.rules.control.authz import may_manage
from services.rules.engine.documents import load_document
from services.rules.engine.errors import InvalidDocumentError
from services.rules.engine.model import parse_rule
from shared.auth import Permission

__all__ = ["build_rule_pages"]

_SAMPLE_ALERT = {
    "source": "prometheus",
    "summary": "checkout p99 latency above 2s",
    "severity": "critical",
    "service": "checkout",
    "labels": {"env": "prod"},
}

_DONE = {
    "enabled": "The rule is enabled.",
    "disabled": "The rule is disabled.",
    "saved": "The rule is saved: every router uses it within a moment.",
    "created": "The rule is created: every router uses it within a moment.",
}

_NEW_RULE = """\
name: my-team-critical
owner_team: payments
destinations: [payments]
enabled: true
continue: false
condition_groups:
  - conditions:
      - {field: severity, operator: is_one_of, values: [critical]}
      - {field: labels.env, operator: is_not_one_of, values: [staging, dev]}
"""


def _as_yaml(rule: dict[str, Any]) -> str:
    editable = {k: v for k, v in rule.items() if k not in ("id", "position")}
    return yaml.safe_dump(editable, sort_keys=False, allow_unicode=True)


def _refusal(exc: ApiError) -> str | None:
    """What to show in the form for an API refusal the person can fix; None to raise."""
    if exc.status in (401,) or exc.status >= 500:
        return None
    return f"The rules API refused this ({exc.api_code}): {exc.detail}"


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def may_edit(viewer: Viewer, rule: dict[str, Any]) -> bool:
    """Whether to offer the edit buttons; the rules API decides again on submit."""
    principal = viewer.principal
    if not principal.has(Permission.rules_write):
        return False
    return may_manage(principal, parse_rule(rule))  # the API's own rule, not a copy of it


def build_rule_pages() -> APIRouter:
    router = APIRouter()

    @router.get("/rules", response_class=HTMLResponse, summary="The ordered rules")
    async def rules_page(request: Request, viewer: CurrentViewer, done: str = "") -> Response:
        ruleset = await _backend(request).get("router", "/v1/rules", token=viewer.token)
        return render(
            request,
            "rules.html",
            viewer=viewer,
            ruleset=ruleset,
            may_edit=may_edit,
            notice=_DONE.get(done),
        )

    @router.post("/rules/{rule_id}/enabled", summary="Enable or disable one rule")
    async def set_enabled(
        request: Request,
        viewer: CurrentViewer,
        rule_id: str,
        csrf: Annotated[str, Form()] = "",
        enabled: Annotated[bool, Form()] = False,
        version: Annotated[int, Form(ge=0)] = 0,
    ) -> Response:
        check_csrf(viewer.session.csrf, csrf)
        backend = _backend(request)
        found = await backend.get("router", f"/v1/rules/{rule_id}", token=viewer.token)
        rule = {**found["rule"], "enabled": enabled}
        await backend.call(
            "router",
            "PUT",
            f"/v1/rules/{rule_id}",
            token=viewer.token,
            json=rule,
            params={"expected_version": version},
        )
        state = "enabled" if enabled else "disabled"
        return RedirectResponse(f"/rules?done={state}#rule-{rule_id}", status_code=303)

    @router.get("/rules/new", response_class=HTMLResponse, summary="Write a new rule")
    async def new_rule(request: Request, viewer: CurrentViewer) -> Response:
        ruleset = await _backend(request).get("router", "/v1/rules", token=viewer.token)
        return render(
            request,
            "rule_edit.html",
            viewer=viewer,
            rule=None,
            text=_NEW_RULE,
            version=ruleset["version"],
            error=None,
        )

    @router.get("/rules/{rule_id}/edit", response_class=HTMLResponse, summary="Edit one rule")
    async def edit_rule(request: Request, viewer: CurrentViewer, rule_id: str) -> Response:
        found = await _backend(request).get("router", f"/v1/rules/{rule_id}", token=viewer.token)
        return render(
            request,
            "rule_edit.html",
            viewer=viewer,
            rule=found["rule"],
            text=_as_yaml(found["rule"]),
            version=found["version"],
            error=None,
        )

    @router.post("/rules/save", response_class=HTMLResponse, summary="Create or replace a rule")
    async def save_rule(
        request: Request,
        viewer: CurrentViewer,
        csrf: Annotated[str, Form()] = "",
        rule_id: Annotated[str, Form(max_length=64)] = "",
        text: Annotated[str, Form(max_length=200_000)] = "",
        version: Annotated[int, Form(ge=0)] = 0,
    ) -> Response:
        check_csrf(viewer.session.csrf, csrf)
        backend = _backend(request)
        is_new, error, status = not rule_id, None, 422
        try:
            body = load_document(text)
            if not isinstance(body, dict):
                raise InvalidDocumentError("a rule is a mapping (name, owner_team, ...)")
            params = {"expected_version": version}
            if rule_id:
                await backend.call(
                    "router",
                    "PUT",
                    f"/v1/rules/{rule_id}",
                    token=viewer.token,
                    json=body,
                    params=params,
                )
            else:
                created = await backend.post(
                    "router", "/v1/rules", token=viewer.token, json=body, params=params
                )
                rule_id = created["rule"]["id"]
        except InvalidDocumentError as exc:
            error = exc.detail
        except ApiError as exc:
            if (error := _refusal(exc)) is None:
                raise
            status = exc.status
        if error is None:
            done = "created" if is_new else "saved"
            return RedirectResponse(f"/rules?done={done}#rule-{rule_id}", status_code=303)
        return render(
            request,
            "rule_edit.html",
            viewer=viewer,
            rule=None if is_new else {"id": rule_id},
            text=text,
            version=version,
            error=error,
            status_code=status,
        )

    @router.get("/rules/explain", response_class=HTMLResponse, summary="Explain playground")
    async def playground(request: Request, viewer: CurrentViewer) -> Response:
        return render(
            request,
            "playground.html",
            viewer=viewer,
            alert_json=json.dumps(_SAMPLE_ALERT, indent=2),
            explanation=None,
            error=None,
        )

    @router.post("/rules/explain", response_class=HTMLResponse, summary="Explain pasted JSON")
    async def playground_explain(
        request: Request,
        viewer: CurrentViewer,
        csrf: Annotated[str, Form()] = "",
        alert_json: Annotated[str, Form(max_length=70_000)] = "",
    ) -> Response:
        check_csrf(viewer.session.csrf, csrf)
        explanation, error = None, None
        try:
            alert = json.loads(alert_json)
        except ValueError as exc:
            error = f"That is not JSON: {exc}"
        else:
            try:
                explanation = await _backend(request).post(
                    "router", "/v1/rules/explain", token=viewer.token, json={"alert": alert}
                )
            except ApiError as exc:
                if exc.status >= 500 or exc.status in (401, 403):
                    raise
                error = f"The rules API refused this alert: {exc.detail}"
        return render(
            request,
            "playground.html",
            viewer=viewer,
            alert_json=alert_json,
            explanation=explanation,
            error=error,
            status_code=200 if error is None else 422,
        )

    return router
