"""``alertyard`` commands for alerts (filled in by the alerts issue)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this domain's commands to ``app``."""
