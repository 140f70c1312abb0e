"""``GET /asyncapi.yaml``: the AsyncAPI document of the topics, for any service to mount.

The document is rendered from code by the caller (``services.asyncapi.render_asyncapi``, which
``shared`` cannot import); this module only serves it, so every service exposes it the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

__all__ = ["ASYNCAPI_PATH", "add_asyncapi_route"]

ASYNCAPI_PATH = "/asyncapi.yaml"


_DOCUMENT = {
    "type": "object",
    "required": ["asyncapi", "channels"],
    "properties": {"asyncapi": {"type": "string"}, "channels": {"type": "object"}},
}


class YamlResponse(PlainTextResponse):
    media_type = "application/yaml"


def add_asyncapi_route(app: FastAPI, render: Callable[[], str]) -> None:
    """Serve ``render()`` (called per request; cache it there) as ``/asyncapi.yaml``."""

    @app.get(
        ASYNCAPI_PATH,
        response_class=YamlResponse,
        tags=["operations"],
        summary="AsyncAPI 3.0 document of every topic, message and header contract",
        # Described as what a YAML reader gets from it: a mapping with the version key.
        responses={200: {"content": {"application/yaml": {"schema": _DOCUMENT}}}},
    )
    async def asyncapi() -> YamlResponse:
        return YamlResponse(render())
