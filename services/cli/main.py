"""Entry point of the ``alertyard`` command: one Typer app, one module per domain."""

from __future__ import annotations

import importlib

import typer

from services.cli import alerts, asyncapi, audit, ingest, rules, stack, tokens
from shared.logging import configure_logging

__all__ = ["app"]

app = typer.Typer(
    name="alertyard",
    help="Kafka-native alert routing: tokens, routing rules, alerts and the audit log.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
)


@app.callback()
def _setup() -> None:
    """Warnings and errors only, on stderr: library log lines never mix with --json output.
    ``serve`` reconfigures logging from the service's settings."""
    configure_logging("warning")


for module in (stack, tokens, rules, alerts, ingest, audit, asyncapi):
    module.register(app)

SERVICES = ("tokens", "router", "audit", "ingest", "console")


@app.command()
def serve(
    service: str = typer.Argument(..., help="tokens | router | audit | ingest | console"),
) -> None:
    """Run one service in the foreground (settings from ALERTYARD_* environment variables)."""
    if service not in SERVICES:
        raise typer.BadParameter(
            f"unknown service {service!r}; choose one of {', '.join(SERVICES)}"
        )
    module = importlib.import_module(f"services.{service}.main")
    module.serve()


if __name__ == "__main__":
    app()
