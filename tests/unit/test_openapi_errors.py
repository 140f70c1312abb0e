"""Every operation documents the statuses it can return with the one shared Error schema."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_openapi_typed import _router_app, _tokens_app

_ERROR = {"$ref": "#/components/schemas/Error"}


@pytest.mark.parametrize("build", [_tokens_app, _router_app], ids=["tokens", "router"])
def test_errors_are_one_schema_on_every_operation(build: Any) -> None:
    spec = build().openapi()
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's default 422 body is gone
    assert set(schemas["Error"]["required"]) == {"code", "detail"}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "400" in responses, (method, path)
            assert operation["operationId"].isidentifier(), (method, path)
            for status, response in responses.items():
                if status.startswith("4") and status != "503":
                    body = response["content"]["application/json"]["schema"]
                    assert body == _ERROR, (method, path, status)


def test_statuses_follow_what_a_route_is() -> None:
    paths = _router_app().openapi()["paths"]
    get_rule = set(paths["/v1/rules/{ref}"]["get"]["responses"])
    assert {"401", "403", "404", "422", "429", "503"} <= get_rule
    assert "409" in paths["/v1/rules/{ref}"]["delete"]["responses"]  # expected_version
    assert "413" in paths["/v1/rules"]["post"]["responses"]
    assert "401" not in paths["/healthz"]["get"]["responses"]  # no token needed


def test_token_create_states_each_kind_and_the_ttl_limit() -> None:
    spec = _tokens_app().openapi()
    body = spec["paths"]["/v1/tokens"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["discriminator"]["propertyName"] == "kind"
    team = spec["components"]["schemas"]["TeamTokenCreate"]
    assert team["additionalProperties"] is False
    assert "permissions" not in team["properties"]
    ttl = team["properties"]["expires_in_s"]["anyOf"][0]
    assert ttl["minimum"] == 60
    assert ttl["maximum"] > 60
