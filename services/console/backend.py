"""Calls to the tokens, router and audit APIs on behalf of the signed-in person.

Every call carries the person's own token, so what a page may show or change is decided by
the API, exactly as for the CLI. API error bodies (``{"code", "detail"}``) become
:class:`ApiError` with the API's status, so pages can say what went wrong.
"""

from __future__ import annotations

from typing import Any

import httpx

from shared.auth import redact_tokens
from shared.errors import AlertyardError, UnavailableError
from shared.settings.console import ConsoleSettings

__all__ = ["ApiError", "Backend"]


class ApiError(AlertyardError):
    """An API answered with an error; ``http_status`` and ``code`` are the API's."""

    def __init__(self, detail: str, *, status: int, code: str, service: str) -> None:
        super().__init__(detail)
        self.service = service
        self.status = status
        """The API's HTTP status (the page answers with the same one)."""
        self.api_code = code


class Backend:
    """One pooled HTTP client per API; each call names the token it acts with."""

    def __init__(
        self, settings: ConsoleSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        def client(base_url: str) -> httpx.AsyncClient:
            return httpx.AsyncClient(
                base_url=base_url.rstrip("/"), timeout=settings.api_timeout_s, transport=transport
            )

        self._clients = {
            "tokens": client(settings.tokens_url),
            "router": client(settings.router_url),
            "audit": client(settings.audit_url),
        }

    async def aclose(self) -> None:
        for http in self._clients.values():
            await http.aclose()

    async def call(self, service: str, method: str, path: str, *, token: str, **kwargs: Any) -> Any:
        """The decoded JSON answer of ``method path`` on ``service``, acting as ``token``."""
        http = self._clients[service]
        headers = {"authorization": f"Bearer {token}"}
        try:
            response = await http.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise UnavailableError(
                f"the {service} service did not answer ({type(exc).__name__}); try again shortly",
                service=service,
            ) from exc
        if response.status_code >= 400:
            raise _error(service, response)
        return response.json() if response.content else None

    async def get(self, service: str, path: str, *, token: str, **kwargs: Any) -> Any:
        return await self.call(service, "GET", path, token=token, **kwargs)

    async def post(self, service: str, path: str, *, token: str, **kwargs: Any) -> Any:
        return await self.call(service, "POST", path, token=token, **kwargs)


def _error(service: str, response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("code", "error"))
        detail = str(body.get("detail", ""))
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            detail += ": " + "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', [])[1:])} {e.get('msg', '')}".strip()
                for e in errors
                if isinstance(e, dict)
            )
    else:
        code, detail = "error", f"the {service} service answered HTTP {response.status_code}"
    return ApiError(redact_tokens(detail), status=response.status_code, code=code, service=service)
