"""``alertyard asyncapi``: write (or check) ``docs/asyncapi.yaml`` from the code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

DEFAULT_PATH = Path("docs/asyncapi.yaml")


def asyncapi(
    out: Annotated[Path, typer.Option("--out", help="Where to write the document.")] = DEFAULT_PATH,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the file differs.")
    ] = False,
) -> None:
    """Generate the AsyncAPI document of every topic (FastStream, from the declared endpoints)."""
    from services.asyncapi import render_asyncapi  # the broker declarations load on demand

    text = render_asyncapi()
    if check:
        current = out.read_text() if out.exists() else ""
        if current != text:
            typer.echo(f"{out} is out of date: run `alertyard asyncapi`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{out} is current")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    typer.echo(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("asyncapi")(asyncapi)
