"""Rules: the ordered ruleset rendered readably, enabling/disabling a rule where the viewer
may, and an explain playground (paste alert JSON, see each condition's result)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.backend import ApiError, Backend
from services.console.security import check_csrf
from services.console.viewer import CurrentViewer, Viewer
from services.console.views import render
from shared.auth import Permission

__all__ = ["build_rule_pages"]

_SAMPLE_ALERT = {
    "source": "prometheus",
    "summary": "checkout p99 latency above 2s",
    "severity": "critical",
    "service": "checkout",
    "labels": {"env": "prod"},
}

_DONE = {"enabled": "The rule is enabled.", "disabled": "The rule is disabled."}


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def may_edit(viewer: Viewer, rule: dict[str, Any]) -> bool:
    """Whether to offer the edit buttons; the rules API decides again on submit."""
    principal = viewer.principal
    if not principal.has(Permission.rules_write):
        return False
    teams = [rule["owner_team"], *rule.get("destinations", [])]
    return all(principal.may_manage_team(team) for team in teams)


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
