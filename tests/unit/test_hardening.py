"""HTTP hardening: security headers, body limits, no tokens in URLs (shared.hardening)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from shared.hardening import SECURITY_HEADERS, harden_http
from shared.http import add_request_logging, install_error_handlers

TOKEN = "ayg_" + "Z" * 44


@pytest.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, list[Any]]]:
    calls: list[Any] = []
    app = FastAPI()
    install_error_handlers(app)
    harden_http(app, max_body_bytes=1_000)
    add_request_logging(app)

    @app.post("/echo")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        calls.append(body)
        return body

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        data = await request.body()
        calls.append(len(data))
        return {"bytes": len(data)}

    @app.get("/items/{item}")
    async def item(item: str) -> dict[str, str]:
        calls.append(item)
        return {"item": item}

    @app.get("/page")
    async def page() -> HTMLResponse:
        return HTMLResponse("<p>hi</p>", headers={"content-security-policy": "default-src 'self'"})

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http, calls


def _assert_hardened(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS:
        assert response.headers[name.decode()] == value.decode(), name
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_every_response_carries_the_security_headers(
    client: tuple[httpx.AsyncClient, list[Any]],
) -> None:
    http, _ = client
    for response in (
        await http.post("/echo", json={"a": 1}),
        await http.get("/missing"),
        await http.post("/echo", content=b"not json", headers={"content-type": "application/json"}),
    ):
        _assert_hardened(response)
    page = await http.get("/page")
    assert page.headers["content-security-policy"] == "default-src 'self'"  # the page's own
    assert page.headers["x-frame-options"] == "DENY"


async def test_bodies_over_the_limit_get_413_declared_or_streamed(
    client: tuple[httpx.AsyncClient, list[Any]],
) -> None:
    http, calls = client
    declared = await http.post("/echo", json={"a": "x" * 2_000})
    assert declared.status_code == 413
    assert declared.json()["code"] == "payload_too_large"
    _assert_hardened(declared)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"y" * 400

    for path in ("/raw", "/echo"):
        streamed = await http.post(
            path, content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413, (path, streamed.text)
        assert streamed.json()["code"] == "payload_too_large"
    assert calls == []
    assert (await http.post("/raw", content=b"z" * 1_000)).json() == {"bytes": 1_000}


@pytest.mark.parametrize(
    "url",
    [
        f"/items/x?t={TOKEN}",
        f"/items/{TOKEN}",
        f"/items/x?q=Bearer%20{TOKEN}",
        "/items/x?access_token=anything",
        "/items/x?Authorization=anything",
    ],
)
async def test_tokens_in_urls_are_refused_before_any_handler(
    client: tuple[httpx.AsyncClient, list[Any]], url: str
) -> None:
    http, calls = client
    response = await http.get(url)
    assert response.status_code == 400
    assert response.json()["code"] == "token_in_url"
    assert TOKEN not in response.text
    _assert_hardened(response)
    assert calls == []


async def test_ordinary_ids_in_urls_are_fine(client: tuple[httpx.AsyncClient, list[Any]]) -> None:
    http, _ = client
    response = await http.get("/items/tok_0123456789abcdef?token_id=tok_0123456789abcdef")
    assert response.status_code == 200
