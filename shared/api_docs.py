"""``/docs`` that works without internet access: Swagger UI served by the service itself.

FastAPI's default ``/docs`` loads Swagger UI from a CDN, a blank page on an air-gapped network.
Every service calls :func:`serve_docs_offline` once on its app; the assets come from the
``swagger-ui-py`` package, so nothing is fetched at run time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_ASSETS_PATH", "serve_docs_offline"]

DOCS_ASSETS_PATH: Final = "/docs/assets"


def _assets_dir() -> Path:
    """Swagger UI 5 (renders OpenAPI 3.1) as shipped in the ``swagger-ui-py`` package; found
    without importing that package (its import loads template engines we do not use)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is missing: uv sync installs it")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def serve_docs_offline(app: FastAPI, *, docs_url: str = "/docs") -> None:
    """Replace the CDN-backed ``/docs`` and ``/redoc`` of ``app`` with a Swagger UI whose
    JavaScript and CSS are served from ``/docs/assets`` by the app itself."""
    cdn_pages = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    app.router.routes[:] = [
        route for route in app.router.routes if getattr(route, "path", None) not in cdn_pages
    ]
    app.docs_url, app.redoc_url = docs_url, None
    redirect_url = f"{docs_url}/oauth2-redirect"
    app.swagger_ui_oauth2_redirect_url = redirect_url
    app.mount(DOCS_ASSETS_PATH, StaticFiles(directory=str(_assets_dir())), name="docs-assets")
    title = f"{app.title} - API docs"

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=title,
            swagger_js_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_PATH}/favicon-32x32.png",
            oauth2_redirect_url=f"{root}{redirect_url}",
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
