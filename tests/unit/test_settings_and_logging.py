"""Settings come from the environment at build time; logs never carry a token."""

from __future__ import annotations

import json

import pytest

from shared.auth import redact_tokens
from shared.errors import InsecureSettingsError
from shared.logging import redact
from shared.serving import exit_unless_secure
from shared.settings import RouterSettings, TokensSettings
from shared.settings.tokens import DEV_HMAC_SECRET


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


def test_the_development_hmac_secret_is_refused_unless_allowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ALERTYARD_TOKENS_HMAC_SECRET", raising=False)
    monkeypatch.delenv("ALERTYARD_TOKENS_ALLOW_DEV_HMAC_SECRET", raising=False)
    with pytest.raises(InsecureSettingsError, match="development secret"):
        TokensSettings().check_hmac_secret()
    with pytest.raises(InsecureSettingsError, match="shorter than 32") as short:
        TokensSettings(hmac_secret="short-but-set").check_hmac_secret()
    assert "short-but-set" not in str(short.value)
    TokensSettings(hmac_secret="x" * 32).check_hmac_secret()
    monkeypatch.setenv("ALERTYARD_TOKENS_ALLOW_DEV_HMAC_SECRET", "1")
    TokensSettings().check_hmac_secret()


def test_a_service_refuses_to_start_with_the_development_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ALERTYARD_TOKENS_HMAC_SECRET", raising=False)
    monkeypatch.delenv("ALERTYARD_TOKENS_ALLOW_DEV_HMAC_SECRET", raising=False)
    with pytest.raises(SystemExit) as stopped:
        exit_unless_secure(TokensSettings())
    assert stopped.value.code == 2
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "refusing_to_start"
    assert line["code"] == "insecure_settings"
    assert DEV_HMAC_SECRET not in json.dumps(line)
