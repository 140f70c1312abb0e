"""Facts that several modules rely on are declared in one module only (the others import)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for d in ("shared", "services") for p in (ROOT / d).rglob("*.py"))


@pytest.mark.parametrize(
    ("fact", "home"),
    [
        pytest.param('"{CONTROL}:teams"', "shared/teams.py", id="teams-redis-key"),
        pytest.param('"alertyard:{control}"', "shared/keyspace.py", id="control-plane-tag"),
        pytest.param("{{decisions.", "shared/keyspace.py", id="decision-shard-tag"),
        pytest.param(":decision:", "services/router/decisions.py", id="decision-keys"),
        pytest.param('f"{CONTROL}:outbox:', "shared/outbox.py", id="outbox-keys"),
        pytest.param("[a-z0-9][a-z0-9._-]{0,62}", "shared/teams.py", id="team-name-pattern"),
        pytest.param('"w": 604800', "shared/durations.py", id="duration-units"),
        pytest.param("def actor_of(", "shared/events.py", id="actor-of"),
        pytest.param("def parse_duration(", "shared/durations.py", id="duration-parser"),
        pytest.param('"{CONTROL}:token:', "shared/tokens/keys.py", id="token-keys"),
    ],
)
def test_declared_once(fact: str, home: str) -> None:
    holders = [str(p.relative_to(ROOT)) for p in SOURCES if fact in p.read_text()]
    allowed = {home, "services/cli/tokens.py"} if "parse_duration" in fact else {home}
    assert set(holders) <= allowed, holders
    assert home in holders
