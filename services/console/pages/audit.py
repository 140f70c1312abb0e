"""The audit log: a paged table with filters, each record's details and the verification
status (chain intact up to seq N, last signed checkpoint, per-source gaps)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from services.audit.api import GapsReport
from services.audit.query import AuditPage
from services.audit.verify import VerifyReport
from services.console.backend import Backend
from services.console.pages.common import pager
from services.console.viewer import CurrentViewer
from services.console.views import render
from shared.events import EVENT_TYPES

__all__ = ["PAGE_SIZE", "build_audit_pages"]

PAGE_SIZE = 50


def _instant(text: str) -> str | None:
    """A ``datetime-local`` field (taken as UTC) as ISO 8601, or None when empty/invalid."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def build_audit_pages() -> APIRouter:
    router = APIRouter()

    @router.get("/audit", response_class=HTMLResponse, summary="The audit log")
    async def audit_page(
        request: Request,
        viewer: CurrentViewer,
        type: Annotated[str, Query(max_length=64)] = "",
        actor: Annotated[str, Query(max_length=128)] = "",
        token_id: Annotated[str, Query(max_length=128)] = "",
        since: Annotated[str, Query(max_length=40)] = "",
        until: Annotated[str, Query(max_length=40)] = "",
        cursor: Annotated[str, Query(max_length=24)] = "",
        trail: Annotated[str, Query(max_length=2000)] = "",
    ) -> Response:
        backend: Backend = request.app.state.backend
        filters = {
            "type": type,
            "actor": actor,
            "token_id": token_id,
            "since": since,
            "until": until,
        }
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        for key in ("type", "actor", "token_id"):
            if filters[key]:
                params[key] = filters[key].strip()
        for key in ("since", "until"):
            if (instant := _instant(filters[key])) is not None:
                params[key] = instant
        if cursor:
            params["cursor"] = cursor
        page = AuditPage.model_validate(
            await backend.get("audit", "/v1/audit/events", token=viewer.token, params=params)
        )
        report = VerifyReport.model_validate(
            await backend.get("audit", "/v1/audit/verify", token=viewer.token)
        )
        gaps = GapsReport.model_validate(
            await backend.get("audit", "/v1/audit/gaps", token=viewer.token)
        )
        paging = pager("/audit", filters, cursor=cursor, trail=trail, next_cursor=page.next_cursor)
        return render(
            request,
            "audit.html",
            viewer=viewer,
            page=page,
            report=report,
            gaps=gaps,
            filters=filters,
            event_types=sorted(EVENT_TYPES),
            paging=paging,
        )

    return router
