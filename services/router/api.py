"""``/v1/alerts``: look up what the router decided for an alert (``alerts:read``).

A principal without org-wide rights (a team token, a member's user token) sees only the
alerts routed to its own teams; for anything else it gets a 404, so ids do not leak.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from services.router.decisions import Decision, DecisionPage, DecisionStore
from shared.alert import Severity
from shared.auth import Permission, Principal
from shared.durations import IsoInstant
from shared.errors import ForbiddenError, NotFoundError, ValidationFailedError
from shared.http_auth import require
from shared.teams import TEAM_NAME_RE

__all__ = ["MAX_PAGE", "build_alerts_api"]

MAX_PAGE = 50
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{18,512}$"
"""What ``next_cursor`` looks like (URL-safe base64 of ``<13-digit ms>:<member>``); one of
that shape this API did not hand out still gets 422."""

Reader = Annotated[Principal, Depends(require(Permission.alerts_read))]


def _store(request: Request) -> DecisionStore:
    store: DecisionStore = request.app.state.decision_store
    return store


def _visible(principal: Principal, decision: Decision) -> bool:
    return principal.is_admin or bool(principal.teams.intersection(decision.teams))


def _scope(principal: Principal, team: str | None, outcome: str | None) -> str:
    if principal.is_admin:
        if team:
            return f"team:{team}"
        return "unrouted" if outcome == "unrouted" else "all"
    if team:
        if team not in principal.teams:
            raise ForbiddenError(f"this token may only read alerts of {sorted(principal.teams)}")
        return f"team:{team}"
    if len(principal.teams) == 1:
        return f"team:{next(iter(principal.teams))}"
    if not principal.teams:
        raise ForbiddenError("this token belongs to no team and may not read alerts")
    raise ValidationFailedError("pass team=: this token belongs to several teams")


def build_alerts_api() -> APIRouter:
    """Routes reading ``app.state.decision_store`` and authorising via ``app.state.validator``."""
    router = APIRouter(prefix="/v1/alerts", tags=["alerts"])

    @router.get("/{alert_id}", summary="The routing decision for one alert id")
    async def get_alert(alert_id: str, request: Request, principal: Reader) -> Decision:
        decision = await _store(request).get(alert_id)
        if decision is None or not _visible(principal, decision):
            raise NotFoundError(f"no routing decision for alert {alert_id!r}", alert_id=alert_id)
        return decision

    @router.get("", summary="Routing decisions, newest first, with cursor pagination")
    async def list_alerts(
        request: Request,
        principal: Reader,
        team: Annotated[str | None, Query(pattern=TEAM_NAME_RE.pattern)] = None,
        status: Annotated[
            Literal["firing", "resolved"] | None, Query(description="The alert's status")
        ] = None,
        outcome: Annotated[Literal["routed", "unrouted"] | None, Query()] = None,
        severity: Annotated[Severity | None, Query(description="The alert's severity")] = None,
        since: Annotated[IsoInstant | None, Query(description="Received at or after")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
        cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
    ) -> DecisionPage:
        scope = _scope(principal, team, outcome)
        try:
            return await _store(request).page(
                scope=scope,
                limit=limit,
                cursor=cursor,
                since=since,
                status=status,
                outcome=outcome,
                severity=severity,
            )
        except ValueError as exc:
            raise ValidationFailedError("cursor is not one this API handed out") from exc

    return router
