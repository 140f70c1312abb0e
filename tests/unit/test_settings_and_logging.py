"""Settings come from the environment at build time; logs never carry a token."""

from __future__ import annotations

import pytest

from shared.auth import redact_tokens
from shared.logging import redact
from shared.settings import RouterSettings, TokensSettings


def test_common_settings_ignore_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTYARD_KAFKA_BOOTSTRAP_SERVERS", "k1:1,k2:2")
    monkeypatch.setenv("ALERTYARD_ROUTER_GROUP_ID", "g")
    monkeypatch.setenv("ALERTYARD_TOPIC_REJECTED", "rej")
    settings = RouterSettings()
    assert settings.kafka_bootstrap_servers == "k1:1,k2:2"
    assert settings.group_id == "g"
    assert settings.topics.rejected == "rej"
    assert settings.topics.team_topic("ops") == "alerts.team.ops"


def test_secret_settings_do_not_print() -> None:
    settings = TokensSettings(hmac_secret="super-secret-value-123")
    assert "super-secret-value-123" not in repr(settings)


def test_token_shaped_strings_are_redacted() -> None:
    token = "ayu_" + "A1b2" * 12
    assert redact_tokens(f"bad token {token} here") == "bad token [redacted-token] here"
    rendered = redact(None, "info", {"event": f"x {token}", "token": token, "n": 1})
    assert token not in str(rendered)
    assert rendered["n"] == 1
