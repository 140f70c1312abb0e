"""``/v1/audit/*``: query the log, verify it, list sequence gaps (``audit:read`` required)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from services.audit.gaps import GapTracker, SourceGaps
from services.audit.query import AuditPage, AuditQuery, query_log
from services.audit.summaries import SegmentSummaries
from services.audit.verify import VerifyCache, VerifyReport, verify_log
from shared.auth import Permission, Principal
from shared.durations import IsoInstant
from shared.http_auth import require

__all__ = ["GapsReport", "build_audit_api"]

Reader = Annotated[Principal, Depends(require(Permission.audit_read))]
CURSOR_PATTERN = r"^[0-9]{0,20}$"
"""What ``next_cursor`` looks like; ``services.audit.query`` refuses anything else."""


class GapsReport(BaseModel):
    """Per-source sequence state; ``missing_total > 0`` means events were lost upstream."""

    model_config = ConfigDict(frozen=True)

    missing_total: int
    sources: list[SourceGaps]


def build_audit_api() -> APIRouter:
    """Routes reading ``app.state``'s ``log_dir``, ``public_key``, ``gaps``, ``verify_cache``
    and ``summaries``."""
    router = APIRouter(prefix="/v1/audit", tags=["audit"])

    @router.get("/events", summary="Audit records matching every given filter, in seq order")
    async def list_events(
        request: Request,
        _: Reader,
        actor: Annotated[str | None, Query(description="Acting user id")] = None,
        token_id: Annotated[
            str | None, Query(description="Token used for, or subject of, the change")
        ] = None,
        type: Annotated[str | None, Query(description="Event type, e.g. token.created")] = None,
        subject: Annotated[str | None, Query(description="e.g. token/<id>")] = None,
        since: Annotated[IsoInstant | None, Query(description="Event time >= (ISO 8601)")] = None,
        until: Annotated[IsoInstant | None, Query(description="Event time < (ISO 8601)")] = None,
        cursor: Annotated[
            str | None,
            # Documented, but checked by the query (422 audit_invalid_cursor, a stable code).
            Query(
                description="next_cursor of the previous page",
                json_schema_extra={"pattern": CURSOR_PATTERN},
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> AuditPage:
        query = AuditQuery(
            actor=actor, token_id=token_id, type=type, subject=subject, since=since, until=until
        )
        directory: Path = request.app.state.log_dir
        summaries: SegmentSummaries = request.app.state.summaries
        return await asyncio.to_thread(
            query_log, directory, query, cursor=cursor, limit=limit, summaries=summaries
        )

    @router.get(
        "/verify",
        summary="Recompute the chain and check every checkpoint signature",
        description=(
            "Incremental: a sealed segment verified by an earlier request and unchanged since "
            "(inode, size, modification time) is not read again; `full=true` reads every byte."
        ),
    )
    async def verify(
        request: Request,
        _: Reader,
        full: Annotated[bool, Query(description="Read every segment again")] = False,
    ) -> VerifyReport:
        directory: Path = request.app.state.log_dir
        public_key: Ed25519PublicKey = request.app.state.public_key
        cache: VerifyCache | None = None if full else request.app.state.verify_cache
        return await asyncio.to_thread(verify_log, directory, public_key, live=True, cache=cache)

    @router.get("/gaps", summary="Missing per-source sequence numbers (lost events)")
    async def gaps(request: Request, _: Reader) -> GapsReport:
        tracker: GapTracker = request.app.state.gaps
        sources = tracker.snapshot()
        return GapsReport(missing_total=sum(s.missing_count for s in sources), sources=sources)

    return router
