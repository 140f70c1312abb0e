"""Alerts: the list (50 per view, newest first, the router API's cursors and filters), search
by id, one alert's routing decision and its explanation against the current ruleset."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.alert_source import read_alert
from services.console.backend import Backend
from services.console.pages.common import pager, rule_names, team_choices
from services.console.viewer import CurrentViewer
from services.console.views import nav_for, render
from services.router.api import MAX_PAGE
from services.router.decisions import Decision, DecisionPage
from shared.alert import AlertStatus, Severity
from shared.errors import ForbiddenError, ValidationFailedError

__all__ = ["SINCE_CHOICES", "build_alert_pages"]

SINCE_CHOICES = {"15m": 900, "1h": 3600, "24h": 86400, "7d": 7 * 86400}
"""The "since" filter: received within the last …"""


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def alert_href(alert_id: str) -> str:
    return "/alerts/" + quote(alert_id, safe="")


def build_alert_pages() -> APIRouter:
    router = APIRouter()

    @router.get("/", include_in_schema=False)
    async def home(viewer: CurrentViewer) -> Response:
        """The first page this token may open (a producer-only token may open none)."""
        pages = nav_for(viewer)
        if not pages:
            raise ForbiddenError(
                "this token holds no permission the console uses (alerts:read, rules:read, "
                "tokens:read, users:write, audit:read); sign in with a user or team token"
            )
        return RedirectResponse(pages[0][0], status_code=303)

    @router.get("/alerts", response_class=HTMLResponse, summary="The alert list")
    async def alert_list(
        request: Request,
        viewer: CurrentViewer,
        team: Annotated[str, Query(max_length=128)] = "",
        status: Annotated[AlertStatus | Literal[""], Query()] = "",
        severity: Annotated[Severity | Literal[""], Query()] = "",
        since: Annotated[str, Query(max_length=8, description="15m, 1h, 24h or 7d")] = "",
        cursor: Annotated[str, Query(max_length=512)] = "",
        trail: Annotated[str, Query(max_length=30_000)] = "",
    ) -> Response:
        if since and since not in SINCE_CHOICES:
            raise ValidationFailedError(f"since must be one of {', '.join(SINCE_CHOICES)}")
        backend = _backend(request)
        teams = await team_choices(backend, viewer)
        if not team and not viewer.principal.is_admin and len(teams) > 1:
            team = teams[0]  # the API needs one team when the viewer belongs to several
        params: dict[str, Any] = {"limit": MAX_PAGE}
        filters = {"team": team, "status": status, "severity": severity, "since": since}
        for key in ("team", "status", "severity"):
            if filters[key]:
                params[key] = filters[key]
        if since:
            clock = request.app.state.clock
            params["since"] = (clock() - timedelta(seconds=SINCE_CHOICES[since])).isoformat()
        if cursor:
            params["cursor"] = cursor
        page = DecisionPage.model_validate(
            await backend.get("router", "/v1/alerts", token=viewer.token, params=params)
        )
        names, _ = await rule_names(backend, viewer)
        paging = pager("/alerts", filters, cursor=cursor, trail=trail, next_cursor=page.next_cursor)
        return render(
            request,
            "alerts.html",
            viewer=viewer,
            page=page,
            names=names,
            teams=teams,
            filters=filters,
            severities=[s.value for s in Severity],
            statuses=[s.value for s in AlertStatus],
            since_choices=list(SINCE_CHOICES),
            paging=paging,
            alert_href=alert_href,
        )

    @router.get("/alerts/search", summary="Find an alert by its unique id")
    async def search(
        viewer: CurrentViewer, id: Annotated[str, Query(max_length=128)] = ""
    ) -> Response:
        alert_id = id.strip()
        return RedirectResponse(alert_href(alert_id) if alert_id else "/alerts", status_code=303)

    @router.get("/alerts/{alert_id}", response_class=HTMLResponse, summary="One alert")
    async def alert_page(request: Request, viewer: CurrentViewer, alert_id: str) -> Response:
        backend = _backend(request)
        decision = await _decision(backend, viewer.token, alert_id)
        names, current_version = await rule_names(backend, viewer)
        return render(
            request,
            "alert.html",
            viewer=viewer,
            decision=decision,
            names=names,
            current_version=current_version,
            href=alert_href(alert_id),
        )

    @router.get(
        "/alerts/{alert_id}/explain", response_class=HTMLResponse, summary="Explain one alert"
    )
    async def explain_page(request: Request, viewer: CurrentViewer, alert_id: str) -> Response:
        backend = _backend(request)
        decision = await _decision(backend, viewer.token, alert_id)
        alert = await read_alert(
            request.app.state.settings.kafka_bootstrap_servers,
            topic=decision.source_topic,
            partition=decision.source_partition,
            offset=decision.source_offset,
        )
        explanation = None
        if alert is not None:
            explanation = await backend.post(
                "router",
                "/v1/rules/explain",
                token=viewer.token,
                json={"alert": alert.model_dump(mode="json")},
            )
        names, current_version = await rule_names(backend, viewer)
        return render(
            request,
            "explain_alert.html",
            viewer=viewer,
            decision=decision,
            alert=alert,
            explanation=explanation,
            names=names,
            current_version=current_version,
            href=alert_href(alert_id),
        )

    return router


async def _decision(backend: Backend, token: str, alert_id: str) -> Decision:
    found = await backend.get("router", "/v1/alerts/" + quote(alert_id, safe=""), token=token)
    return Decision.model_validate(found)
