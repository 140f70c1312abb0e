"""``alertyard`` commands for rules (filled in by the rules issue)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this domain's commands to ``app``."""
