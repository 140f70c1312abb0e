"""Small helpers the page modules share: rule names, teams, cursor trails."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from services.console.backend import ApiError, Backend
from services.console.viewer import Viewer
from shared.auth import Permission

__all__ = ["Pager", "pager", "rule_names", "team_choices"]

_CURSOR_RE = re.compile(r"^[A-Za-z0-9_-]{1,512}$")
_FIRST = "-"
"""Stands for "no cursor" (the first page) in a trail."""
_MAX_TRAIL = 50
"""Pages one can step back through; older ones fall off (the first page is a click away)."""


def decode_trail(text: str | None) -> list[str | None]:
    """The cursors of the pages before this one (``None`` = the first page)."""
    if not text:
        return []
    trail: list[str | None] = []
    for part in text.split(".")[-_MAX_TRAIL:]:
        if part == _FIRST:
            trail.append(None)
        elif _CURSOR_RE.match(part):
            trail.append(part)
    return trail


def encode_trail(trail: list[str | None]) -> str:
    return ".".join(_FIRST if c is None else c for c in trail[-_MAX_TRAIL:])


@dataclass(frozen=True)
class Pager:
    number: int
    prev_href: str | None
    next_href: str | None


def pager(
    base: str, filters: dict[str, str], *, cursor: str, trail: str, next_cursor: str | None
) -> Pager:
    """Previous/next links over an API that only hands out "next" cursors: the links carry
    the trail of cursors that led here, so "previous" is the last one of it."""
    previous = decode_trail(trail)
    kept = {k: v for k, v in filters.items() if v}

    def link(to_cursor: str | None, to_trail: list[str | None]) -> str:
        query = dict(kept)
        if to_cursor:
            query["cursor"] = to_cursor
        if to_trail:
            query["trail"] = encode_trail(to_trail)
        return base + ("?" + urlencode(query) if query else "")

    next_href = link(next_cursor, [*previous, cursor or None]) if next_cursor else None
    prev_href = None
    if previous:
        prev_href = link(previous[-1], previous[:-1])
    elif cursor:  # the trail was cut short: step back to the first page
        prev_href = link(None, [])
    return Pager(len(previous) + 1 if cursor else 1, prev_href, next_href)


async def rule_names(backend: Backend, viewer: Viewer) -> tuple[dict[str, str], int | None]:
    """Rule id -> name of the current ruleset, and its version (empty without ``rules:read``)."""
    if not viewer.can(Permission.rules_read):
        return {}, None
    try:
        ruleset: dict[str, Any] = await backend.get("router", "/v1/rules", token=viewer.token)
    except ApiError:
        return {}, None
    return {r["id"]: r["name"] for r in ruleset.get("rules", [])}, ruleset.get("version")


async def team_choices(backend: Backend, viewer: Viewer) -> list[str]:
    """Teams the viewer may pick: every team for org-wide principals, else its own."""
    if not viewer.principal.is_admin:
        return sorted(viewer.principal.teams)
    if not viewer.can(Permission.rules_read):
        return []
    teams: list[dict[str, str]] = await backend.get("tokens", "/v1/teams", token=viewer.token)
    return sorted(t["name"] for t in teams)
