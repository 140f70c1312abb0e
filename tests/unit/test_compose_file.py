"""docker-compose.yml cannot run here (no Docker engine); check it agrees with the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from shared.settings import (
    AuditSettings,
    CommonSettings,
    ConsoleSettings,
    IngestSettings,
    RouterSettings,
    TokensSettings,
)

ROOT = Path(__file__).resolve().parents[2]
SERVICES: dict[str, type[CommonSettings]] = {
    "tokens": TokensSettings,
    "router": RouterSettings,
    "audit": AuditSettings,
    "console": ConsoleSettings,
    "ingest": IngestSettings,
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _env_names(settings: type[BaseSettings]) -> set[str]:
    """Every environment variable a settings class reads (aliases and prefixed names)."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        names.add(alias.upper() if isinstance(alias, str) else (prefix + name).upper())
    return names


def test_every_service_and_backing_service_is_defined(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= {"kafka", "redis", *SERVICES}
    assert compose["services"]["kafka"]["image"].startswith("apache/kafka:4.")


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_environment_names_are_read_by_settings(compose: dict[str, Any], service: str) -> None:
    env = compose["services"][service]["environment"]
    known = set().union(*(_env_names(s) for s in SERVICES.values()))
    unknown = sorted(set(env) - known)
    assert not unknown, f"{service} sets variables no settings class reads: {unknown}"


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_ports_match_settings(compose: dict[str, Any], service: str) -> None:
    settings_cls = SERVICES[service]
    env = compose["services"][service]["environment"]
    prefix = str(settings_cls.model_config["env_prefix"])
    port = int(env[f"{prefix}HTTP_PORT"])
    assert port == settings_cls.model_fields["http_port"].default
    assert f"{port}:{port}" in compose["services"][service]["ports"]
    assert str(port) in " ".join(compose["services"][service]["healthcheck"]["test"])
    assert compose["services"][service]["command"] == ["serve", service]


def test_kafka_and_redis_addresses_match_service_names(compose: dict[str, Any]) -> None:
    env = compose["x-alertyard-env"]
    assert env["ALERTYARD_KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] in compose["services"]
    assert env["ALERTYARD_REDIS_URL"].split("//")[1].split(":")[0] in compose["services"]


def test_redis_persists_with_the_stack_settings_on_a_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    conf = "/usr/local/etc/redis/redis.conf"
    assert redis["command"][:2] == ["redis-server", conf]
    assert f"./stack/redis.conf:{conf}:ro" in redis["volumes"]
    data = redis["command"][redis["command"].index("--dir") + 1]
    volume = next(v for v in redis["volumes"] if v.endswith(f":{data}"))
    assert volume.split(":")[0] in compose["volumes"]
    settings = (ROOT / "stack" / "redis.conf").read_text().splitlines()
    assert {"appendonly yes", "appendfsync everysec"} <= set(settings)
