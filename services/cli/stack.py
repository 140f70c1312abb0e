"""``alertyard stack``: the local Kafka + Redis stack (wraps ``scripts/stack``)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import typer

__all__ = ["register"]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "stack"

stack_app = typer.Typer(help="Start and stop the local Kafka + Redis stack (no Docker needed).")


def _run(*args: str) -> None:
    if not SCRIPT.exists():
        raise typer.BadParameter(f"{SCRIPT} not found: run from a source checkout")
    raise typer.Exit(subprocess.call([str(SCRIPT), *args]))


@stack_app.command()
def up(brokers: int = typer.Option(1, min=1, max=5, help="Number of Kafka brokers.")) -> None:
    """Start Kafka (KRaft) and Redis on 127.0.0.1; harmless when already up."""
    _run("up", "--brokers", str(brokers))


@stack_app.command()
def down() -> None:
    """Stop every process the stack started."""
    _run("down")


@stack_app.command()
def status() -> None:
    """Show what runs, where and which versions."""
    _run("status")


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
