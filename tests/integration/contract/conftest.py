"""The running services every contract test calls (started once for the package)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.contract._services import Services, running_services


@pytest.fixture(scope="package")
async def services(
    kafka_bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Services]:
    async with running_services(
        kafka_bootstrap, redis_url, tmp_path_factory.mktemp("contract")
    ) as running:
        yield running
        await _credentials_still_work(running)


async def _credentials_still_work(services: Services) -> None:
    """No fuzzer revoked, rotated away or deactivated a credential of the test."""
    async with httpx.AsyncClient(base_url=services.urls["tokens"]) as http:
        for who, raw in services.tokens.items():
            answer = await http.post(
                "/v1/tokens/introspect",
                json={"token": raw},
                headers={"authorization": f"Bearer {services.tokens['setup']}"},
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["active"], f"the {who} token was revoked by a fuzzer"
