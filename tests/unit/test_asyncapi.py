"""``docs/asyncapi.yaml`` is what the code declares, covers every topic, and is served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.asyncapi import header_contracts, render_asyncapi
from services.audit.app import build_app
from services.audit.gaps import GapTracker
from shared.auth import Principal
from shared.settings import TopicSettings

DOCUMENT = Path(__file__).parents[2] / "docs" / "asyncapi.yaml"


def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(render_asyncapi())
    return loaded


def test_the_checked_in_document_is_current() -> None:
    assert DOCUMENT.read_text() == render_asyncapi(), "run `alertyard asyncapi` and commit it"


def test_every_topic_has_a_channel_with_a_described_message() -> None:
    topics = TopicSettings.model_construct()
    document = _document()
    assert document["asyncapi"] == "3.0.0"
    addresses = {channel["address"] for channel in document["channels"].values()}
    expected = {
        topics.alerts,
        topics.team_prefix + "{team}",
        topics.unrouted,
        topics.rejected,
        topics.audit,
    }
    assert expected <= addresses
    for channel in document["channels"].values():
        assert channel["description"]
    schemas = document["components"]["schemas"]
    assert {"Alert", "Event", "Actor"} <= set(schemas)


def test_documented_headers_are_the_ones_the_models_write() -> None:
    for documented, written in header_contracts().values():
        assert list(documented) == written
    messages = _document()["components"]["messages"]
    routed = [m for name, m in messages.items() if name.startswith("alerts.team.")]
    assert routed
    assert set(routed[0]["headers"]["properties"]) == set(header_contracts()["routed"][1])


class _NoTokens:
    async def authenticate(self, raw_token: str) -> Principal:  # pragma: no cover - unused
        raise AssertionError("no route here needs a token")

    def authenticate_cached(self, raw_token: str) -> Principal | None:  # pragma: no cover
        return None


async def test_the_audit_service_serves_it(tmp_path: Path) -> None:
    app = build_app(
        validator=_NoTokens(),
        log_dir=tmp_path,
        public_key=Ed25519PrivateKey.generate().public_key(),
        gaps=GapTracker(),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://audit"
    ) as client:
        response = await client.get("/asyncapi.yaml")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/yaml")
    assert response.text == render_asyncapi()
