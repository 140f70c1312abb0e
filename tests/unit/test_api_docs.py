"""``/docs`` of every service works offline: the page and its assets come from the service."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import FastAPI

from shared.api_docs import serve_docs_offline


@pytest.fixture
def app() -> FastAPI:
    app = FastAPI(title="demo")

    @app.get("/v1/thing")
    async def thing() -> dict[str, str]:
        return {"ok": "yes"}

    serve_docs_offline(app)
    return app


async def test_docs_page_loads_only_local_assets(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        page = await http.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
        assert urls, "the page references its assets"
        assert all(url.startswith("/") for url in urls), urls  # nothing from a CDN
        assert "https://" not in page.text
        for url in urls:
            asset = await http.get(url)
            assert asset.status_code == 200, url
            assert len(asset.content) > 1000, url
        assert (await http.get("/openapi.json")).json()["paths"].keys() == {"/v1/thing"}
        assert (await http.get("/redoc")).status_code == 404  # its page loads from a CDN
