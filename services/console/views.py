"""Rendering pages: one Jinja2 environment (autoescaping on), the navigation, formatting."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.console.viewer import Viewer
from shared.auth import Permission

__all__ = ["STATIC_DIR", "render"]

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"

templates = Jinja2Templates(directory=_HERE / "templates")
templates.env.autoescape = True  # every template, whatever its name: alert text is hostile

_NAV: list[tuple[str, str, Permission]] = [
    ("/alerts", "Alerts", Permission.alerts_read),
    ("/rules", "Rules", Permission.rules_read),
    ("/settings/tokens", "Tokens", Permission.tokens_read),
    ("/settings/users", "Users", Permission.users_write),
    ("/settings/teams", "Teams", Permission.rules_read),
    ("/audit", "Audit log", Permission.audit_read),
]


def _when(value: object) -> str:
    """An API timestamp as ``2026-12-01 09:10:11 UTC`` (empty for none)."""
    if value is None or value == "":
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when_short(value: object) -> str:
    """``2026-12-01 09:10`` for dense tables (the column header says UTC)."""
    return _when(value)[:16]


def _pretty(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)


templates.env.filters["when"] = _when
templates.env.filters["when_short"] = _when_short
templates.env.filters["pretty"] = _pretty


def nav_for(viewer: Viewer | None) -> list[tuple[str, str]]:
    if viewer is None:
        return []
    return [(href, label) for href, label, needs in _NAV if viewer.can(needs)]


def render(
    request: Request,
    template: str,
    *,
    viewer: Viewer | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """``template`` with the viewer, its CSRF secret and the navigation in its context."""
    base = {
        "viewer": viewer,
        "csrf": viewer.session.csrf if viewer else "",
        "nav": nav_for(viewer),
        "path": request.url.path,
    }
    return templates.TemplateResponse(
        request, template, {**base, **context}, status_code=status_code
    )
