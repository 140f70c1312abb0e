"""What every CLI command shares: service URLs, the acting token, HTTP calls and output."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ApiClient",
    "JsonOption",
    "TokenOption",
    "console",
    "dump_model",
    "fail",
    "print_json",
    "print_model",
    "print_table",
]

M = TypeVar("M", bound=BaseModel)

console = Console()
err_console = Console(stderr=True)

TokenOption = typer.Option(
    None,
    "--token",
    envvar="ALERTYARD_TOKEN",
    help="Acting API token (or set ALERTYARD_TOKEN).",
    show_default=False,
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")

DEFAULT_URLS = {
    "tokens": ("ALERTYARD_TOKENS_URL", "http://127.0.0.1:8081"),
    "router": ("ALERTYARD_ROUTER_URL", "http://127.0.0.1:8082"),
    "audit": ("ALERTYARD_AUDIT_URL", "http://127.0.0.1:8083"),
    "ingest": ("ALERTYARD_INGEST_URL", "http://127.0.0.1:8084"),
}


def fail(message: str, *, code: int = 1) -> NoReturn:
    # The message is data (it may contain "[code, HTTP 404]"), not rich markup.
    err_console.print("[bold red]error:[/] " + escape(message))
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def print_model(body: BaseModel | list[M], *, exclude_none: bool = False) -> None:
    """``--json`` output of an API response model (or a list of them), as the service sends it."""
    if isinstance(body, list):
        print_json([dump_model(item, exclude_none=exclude_none) for item in body])
    else:
        print_json(dump_model(body, exclude_none=exclude_none))


def dump_model(body: BaseModel, *, exclude_none: bool = False) -> dict[str, Any]:
    """A response model as JSON-ready data (for tables and ``--json``)."""
    return body.model_dump(mode="json", by_alias=True, exclude_none=exclude_none)


_PIPED_WIDTH = 240


def print_table(
    rows: list[dict[str, Any]], columns: list[str], *, title: str | None = None
) -> None:
    # Values fold onto more lines rather than end in "…": an id cut short cannot be pasted back.
    # No vertical rules: ids and times fit a 120-column terminal without folding.
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    if console.is_terminal:
        console.print(table)
    else:  # piped: rich would assume 80 columns (and print() caps at that); a row a line, for grep
        Console(file=console.file, width=_PIPED_WIDTH).print(table)


class ApiClient:
    """A small HTTP client for one service; turns error bodies into one clear line."""

    def __init__(self, service: str, token: str | None, *, timeout: float = 10.0) -> None:
        env, default = DEFAULT_URLS[service]
        self.base_url = os.environ.get(env, default).rstrip("/")
        headers = {"authorization": f"Bearer {token}"} if token else {}
        import httpx  # imported on use: it is a large share of the CLI's start-up time

        self._httpx = httpx
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except self._httpx.HTTPError as exc:
            name = exc.__class__.__name__
            fail(f"cannot reach {self.base_url} ({name}); is the service running? (make run)")
        if response.status_code >= 400:
            fail(_describe_error(response))
        if not response.content:
            return None
        return response.json()

    def typed(self, model: type[M], method: str, path: str, **kwargs: Any) -> M:
        """The response body as the service's own response model (validated)."""
        return model.model_validate(self.request(method, path, **kwargs))

    def typed_list(self, model: type[M], method: str, path: str, **kwargs: Any) -> list[M]:
        """A JSON array response as a list of the service's response model."""
        return [model.model_validate(item) for item in self.request(method, path, **kwargs)]

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def find(self, path: str) -> Any:
        """GET ``path``; None on 404 (not there yet), like :meth:`get` otherwise."""
        try:
            response = self._http.get(path)
        except self._httpx.HTTPError as exc:
            fail(f"cannot reach {self.base_url} ({exc.__class__.__name__}); is it running?")
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            fail(_describe_error(response))
        return response.json()

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Any:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


def _describe_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    code = body.get("code", "error") if isinstance(body, dict) else "error"
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return f"{detail} [{code}, HTTP {response.status_code}]"
